// Combinations of config changes cut short, then undone or changed again, on real LMDB (a connector that
// reads a source again in chunks): each compared with a fresh state on the config it ends on.
import { describe, expect, it } from "vitest";
import type { Row } from "../../../core/change.js";
import type { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { listRuns } from "../../../streams/runs.js";
import { A, chunkedRereader, compiled, dumpUsers as dump, replace, runner, shopChanges, T, undoneStates, type Obj } from "../../helpers/undone.js";

/** Amounts with cents: sums and maxima that an integer type would change. */
const changes = () => shopChanges((i) => (i % 90) + 10.5);
const tableRows = (sourceId: string): [string, Row][] => changes().filter((c) => c.sourceId === sourceId).map((c) => [c.key, c.after as Row]);
const without = (objects: Obj[], ...ids: string[]) => objects.filter((o) => !ids.includes(String(o.id)) || o.class === "destination" || o.class === "app");

describe("config changes cut short, in combination", () => {
  const states = undoneStates("runs-undone-combos-");
  const built = (name: string, objects: Obj[]) => states.built(name, objects, [], changes());

  /** A connector re-reading users_table or purchases_table (500 rows a chunk); it stops the Runs after `stopAfter` chunks (-1: never). */
  const rereader = (store: Store, objects: Obj[], stopAfter: number, onStop: () => void) => chunkedRereader(store, objects, tableRows, { stopAfter, onStop });

  /** Runs the config's Runs until `stopWhen` (checked after every chunk) or a re-read's `stopAfter` chunks; undefined: to the end. */
  async function take(store: Store, objects: Obj[], cut?: { stopWhen?: () => boolean; rereadChunks?: number }): Promise<string[]> {
    const { domain, definitions } = compiled(objects);
    let readStop!: () => void;
    const readStopped = new Promise<void>((resolve) => (readStop = resolve));
    const { runs: r, stopped } = runner(store, domain, { connector: rereader(store, objects, cut?.rereadChunks ?? -1, () => readStop()), ...(cut?.stopWhen ? { stopWhen: cut.stopWhen } : {}) });
    const plan = await r.start(definitions, () => true, false);
    if (cut) {
      await Promise.race([stopped, readStopped, r.idle()]);
      r.stop();
    } else {
      await r.idle();
      expect(listRuns(store).filter((run) => run.state === "running" || run.state === "queued" || run.state === "failed").map((x) => [x.kind, x.target, x.state, x.error])).toEqual([]);
    }
    return plan.runs.map((run) => `${run.spec.kind} ${run.target}`);
  }

  const wrote = (store: Store) => () => listRuns(store).some((r) => r.state === "running" && r.processed > 0);

  async function scenario(name: string, steps: { cfg: () => Obj[]; cut?: "chunk" | number }[]): Promise<{ plans: string[][]; equal: boolean; again: string[]; unsettled: unknown[] }> {
    const store = await built(`${name}-s`, A());
    const plans: string[][] = [];
    for (const step of steps) {
      const cut = step.cut === undefined ? undefined : step.cut === "chunk" ? { stopWhen: wrote(store) } : { rereadChunks: step.cut };
      plans.push(await take(store, step.cfg(), cut));
    }
    const last = (steps[steps.length - 1] as { cfg: () => Obj[] }).cfg;
    const fresh = await built(`${name}-f`, last());
    const a = dump(store, last());
    const b = dump(fresh, last());
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      const sums = (st: Store) => [...st.recordsOf("users")].reduce((n, r) => n + Number(r.values.purchase_count ?? 0), 0);
      expect({ plans, purchaseCountTotal: sums(store), rows: store.rowCount("purchases_table") }).toEqual({ plans, purchaseCountTotal: sums(fresh), rows: fresh.rowCount("purchases_table") });
      expect(a).toEqual(b);
    }
    const again = await take(store, last());
    return { plans, equal: true, again, unsettled: store.metaWithPrefix("unsettled:") };
  }

  const ltvFilter = () => replace(A(), "lifetime_value", (o) => ({ ...o, filters: [{ key: "state", op: "eq", match: "refunded" }] }));
  const ltvAndGroup = () => replace(ltvFilter(), "high_value", (o) => ({ ...o, rules: [{ propertyId: "lifetime_value", op: "gte", match: 20 }] }));
  const emailNotUnique = () => replace(A(), "email", (o) => ({ ...o, unique: false }));
  const ordersTable = () => replace(A(), "purchases_table", (o) => ({ ...o, options: { table: "orders" } }));
  const noMax = () => without(A(), "max_amount", "vip_or_big");
  const firstNameCol = () => replace(A(), "first_name", (o) => ({ ...o, options: { column: "email" } }));
  const noFirstName = () => without(A(), "first_name", "named_a");
  const maxInt = () => replace(A(), "max_amount", (o) => ({ ...o, type: "integer" }));

  it("an aggregate's filter and the group reading it changed, cut, undone", { timeout: 60_000 }, async () => {
    expect((await scenario("c1", [{ cfg: ltvAndGroup, cut: "chunk" }, { cfg: A }])).again).toEqual([]);
  });
  it("email made not unique, cut in its re-read, undone", { timeout: 60_000 }, async () => {
    expect((await scenario("c2", [{ cfg: emailNotUnique, cut: 2 }, { cfg: A }])).again).toEqual([]);
  });
  it("purchases moved to another table, cut in its first removal, then max_amount taken out", { timeout: 60_000 }, async () => {
    expect((await scenario("c3", [{ cfg: ordersTable, cut: "chunk" }, { cfg: noMax }])).again).toEqual([]);
  });
  it("first_name's column changed, cut in the re-read, then first_name taken out", { timeout: 60_000 }, async () => {
    expect((await scenario("c4", [{ cfg: firstNameCol, cut: 2 }, { cfg: noFirstName }])).again).toEqual([]);
  });
  it("purchases moved to another table, cut in its re-read, undone, redo cut in its re-read, then moved again", { timeout: 60_000 }, async () => {
    expect((await scenario("c5", [{ cfg: ordersTable, cut: 3 }, { cfg: A, cut: 3 }, { cfg: ordersTable }])).again).toEqual([]);
  });
  it("email made not unique, cut, then first_name's column changed (a third config), cut, then A", { timeout: 60_000 }, async () => {
    expect((await scenario("c6", [{ cfg: emailNotUnique, cut: 2 }, { cfg: () => replace(emailNotUnique(), "first_name", (o) => ({ ...o, options: { column: "email" } })), cut: 2 }, { cfg: A }])).again).toEqual([]);
  });
  it("purchases moved to another table, cut in its re-read (after its properties' removal), undone", { timeout: 60_000 }, async () => {
    const r = await scenario("c9", [{ cfg: ordersTable, cut: 3 }, { cfg: A }]);
    expect(r.again).toEqual([]);
  });
  it("purchases moved to another table, cut in its re-read, restarted on the same config", { timeout: 60_000 }, async () => {
    expect((await scenario("c10", [{ cfg: ordersTable, cut: 3 }, { cfg: ordersTable }])).again).toEqual([]);
  });
  it("purchases moved to another table, a row streamed in between its properties' removal and its rows'", { timeout: 60_000 }, async () => {
    const store = await built("stream-s", A());
    // The move's Runs until every property of the source is removed; then a purchase streams in under
    // the new config (an update that changes nothing), before the source's rows are removed and read again.
    const removed = () => {
      const properties = listRuns(store).filter((r) => r.kind === "remove-property");
      return properties.length > 0 && properties.every((r) => r.state === "complete");
    };
    await take(store, ordersTable(), { stopWhen: removed });
    expect(listRuns(store).some((r) => r.kind === "remove-source" && r.processed > 0)).toBe(false);
    const row = tableRows("purchases_table").find(([key]) => key === "7") as [string, Row];
    await applyBatch(store, compiled(ordersTable()).domain, [{ sourceId: "purchases_table", op: "update", key: "7", before: null, after: row[1], position: { stream: "db", position: "stream-1" }, commitTime: T }], T);
    await take(store, ordersTable());
    const fresh = await built("stream-f", ordersTable());
    expect(dump(store, ordersTable())).toEqual(dump(fresh, ordersTable()));
  });
  it("an aggregate's type changed, not cut", { timeout: 60_000 }, async () => {
    expect((await scenario("c7", [{ cfg: maxInt }])).again).toEqual([]);
  });
  it("an aggregate's type changed, cut, undone", { timeout: 60_000 }, async () => {
    expect((await scenario("c8", [{ cfg: maxInt, cut: "chunk" }, { cfg: A }])).again).toEqual([]);
  });
});
