// Combinations of config changes cut short, then undone or changed again, on real LMDB (a connector that
// reads a source again in chunks): each compared with a fresh state on the config it ends on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Change, Row } from "../../../core/change.js";
import { definitionsOf, type Definitions } from "../../../core/definitions.js";
import type { Domain } from "../../../core/domain.js";
import type { SourceConnector } from "../../../connectors/types.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { listRuns, Runs, runStream } from "../../../streams/runs.js";
import { asRaw } from "../../helpers/config.js";
import { dumpState } from "../../helpers/converge.js";
import { coreConfigObjects, purchase, user } from "../../helpers/core.js";

type Obj = Record<string, unknown>;
const USERS = 3000;
const T = Date.UTC(2026, 10, 1, 12, 0, 0);
const silent = pino({ level: "silent" });
/** Each Runs its own clock (a millisecond apart), so that Run ids differ between starts as they do in a daemon. */
let starts = 0;
const nextClock = () => {
  const at = T + ++starts;
  return () => at;
};

function compiled(objects: Obj[]): { domain: Domain; definitions: Definitions; groups: string[] } {
  const result = validateObjects(asRaw(objects));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return { domain: result.domain, definitions: definitionsOf(result.config, result.domain), groups: [...result.domain.groups.keys()] };
}
function changes(): Change[] {
  const out: Change[] = [];
  for (let i = 1; i <= USERS; i += 1) out.push(user(i, { email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 2 === 0 }, T));
  for (let i = 1; i <= 2 * USERS; i += 1) {
    out.push(purchase(i, { user_id: 1 + (i % USERS), amount: (i % 90) + 10.5, state: i % 5 ? "paid" : "refunded", sku: i % 2 ? "A" : "B", created_at: T - (i % 5) * 86_400_000 }, T));
  }
  return out;
}
const tableRows = (sourceId: string): [string, Row][] => changes().filter((c) => c.sourceId === sourceId).map((c) => [c.key, c.after as Row]);

const A = (): Obj[] => coreConfigObjects();
const replace = (objects: Obj[], id: string, f: (o: Obj) => Obj | null): Obj[] => objects.flatMap((o) => (o.id === id && o.class !== "destination" ? [f(o)].filter((x): x is Obj => x !== null) : [o]));
const without = (objects: Obj[], ...ids: string[]) => objects.filter((o) => !ids.includes(String(o.id)) || o.class === "destination" || o.class === "app");

describe("config changes cut short, in combination", () => {
  let dir: string;
  const stores: Store[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "zz-review2c-"));
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A connector re-reading users_table or purchases_table (500 rows a chunk); it stops the Runs after `stopAfter` chunks (-1: never). */
  const rereader =
    (store: Store, objects: Obj[], stopAfter: number, onStop: () => void) =>
    (runs: () => Runs): SourceConnector => {
      const { domain } = compiled(objects);
      return {
        reread: async (request: { runId: string; sourceIds: readonly string[]; resumeFrom?: string }) => {
          void (async () => {
            const sourceId = request.sourceIds[0] as string;
            const rows = tableRows(sourceId);
            const from = request.resumeFrom ? ((JSON.parse(request.resumeFrom) as { rows: number }).rows ?? 0) : 0;
            let chunks = 0;
            for (let at = from; at < rows.length; at += 500) {
              const chunk = rows.slice(at, at + 500);
              const complete = at + 500 >= rows.length;
              const position = JSON.stringify({ rows: at + chunk.length, ...(complete ? { complete: true } : {}) });
              const cs: Change[] = chunk.map(([key, row]) => ({ sourceId, op: "insert", key, before: null, after: row, position: { stream: runStream(request.runId), position }, commitTime: T }));
              await applyBatch(store, domain, cs, T);
              runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), position]]), commitTimes: new Map(), seconds: 0 });
              chunks += 1;
              if (chunks === stopAfter) {
                runs().stop();
                onStop();
                return;
              }
            }
          })();
        },
      } as unknown as SourceConnector;
    };

  /** Runs the config's Runs until `stopWhen` (checked after every chunk) or a re-read's `stopAfter` chunks; undefined: to the end. */
  async function take(store: Store, objects: Obj[], cut?: { stopWhen?: () => boolean; rereadChunks?: number }): Promise<string[]> {
    const { domain, definitions } = compiled(objects);
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const conn = rereader(store, objects, cut?.rereadChunks ?? -1, () => stop())(() => r);
    const r: Runs = new Runs({
      store,
      domain,
      connectorOf: () => conn,
      logger: silent,
      clock: nextClock(),
      schedule: (work) =>
        void (async () => {
          for (;;) {
            const more = await work.step();
            if (cut?.stopWhen?.()) {
              r.stop();
              stop();
              return;
            }
            if (!more) return;
          }
        })(),
    });
    const plan = await r.start(definitions, () => true, false);
    if (cut) {
      await Promise.race([stopped, r.idle()]);
      r.stop();
    } else {
      await r.idle();
      expect(listRuns(store).filter((run) => run.state === "running" || run.state === "queued" || run.state === "failed").map((x) => [x.kind, x.target, x.state, x.error])).toEqual([]);
    }
    return plan.runs.map((run) => `${run.spec.kind} ${run.target}`);
  }

  async function built(name: string, objects: Obj[]): Promise<Store> {
    const store = Store.open(join(dir, name));
    stores.push(store);
    const { domain, definitions } = compiled(objects);
    await new Runs({ store, domain, connectorOf: () => undefined, logger: silent, clock: nextClock(), schedule: () => undefined }).start(definitions, () => true, true);
    const all = changes();
    for (let i = 0; i < all.length; i += 600) await applyBatch(store, domain, all.slice(i, i + 600), T);
    return store;
  }
  const dump = (store: Store, objects: Obj[]) => dumpState(store, ["users"], [], compiled(objects).groups, ["purchases_table"]);
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
