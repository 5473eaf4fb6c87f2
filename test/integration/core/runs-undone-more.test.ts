// A config change undone part-way converges, on real LMDB, for what test/integration/core/runs-undone.test.ts
// does not cover: sources read again (a connector that re-reads in chunks), sources recorded without a
// Run of their own, models removed and added, a redo itself cut short, a restart during a redo, and a
// delete at the destination while an export is cut short. Each ends compared with a fresh state on the
// config it ends on (or, for the destination, with what a fresh one would hold).
import { describe, expect, it } from "vitest";
import type { SourceConnector } from "../../../connectors/types.js";
import type { Change, Row } from "../../../core/change.js";
import { planRuns } from "../../../core/definitions.js";
import type { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import type { Runs} from "../../../streams/runs.js";
import { listRuns, runStream } from "../../../streams/runs.js";
import { dumpState } from "../../helpers/converge.js";
import { change, user } from "../../helpers/core.js";
import { A, accountChange, accountRow, accountsObjects, chunkedRereader, compiled, deliver, dumpUsers as dump, replace, runner, T, undoneStates, USER_TABLES, usersTableRows, USERS, type Obj, type Rereader } from "../../helpers/undone.js";

const filterChanged = () => replace(A(), "lifetime_value", (o) => ({ ...o, filters: [{ key: "state", op: "eq", match: "refunded" }] }));
/** lifetime_value taken out (with the group reading it and the destination's mapping of it). */
const ltvRemoved = () =>
  replace(replace(A(), "lifetime_value", () => null), "high_value", () => null).map((o) =>
    o.class === "destination" ? { ...o, mapping: { id: "user_id", email: "email" }, destinationGroupMemberships: { Recent: "recent" } } : o,
  );

/** A second model, accounts (6,000 of them, a third "big"), beside the users. */
const ACCOUNTS = 6000;
const A2 = () => [...A(), ...accountsObjects()];
const accountRows = Array.from({ length: ACCOUNTS }, (_, i) => accountRow(i + 1));
const accountChanges = (stream: string, position: (n: number) => string) => accountRows.map((row, i) => accountChange(Number(row.id), stream, position(i)));

describe("a config change undone part-way: sources, models, destinations", () => {
  const states = undoneStates("runs-undone-more-");
  const built = states.built;
  const settled = (store: Store, objects: Obj[], needsReread: (id: string) => boolean = () => true, connector?: Rereader) => states.settled(store, objects, { needsReread, ...(connector ? { connector } : {}) });
  /** A state under A2: the users, then the accounts. */
  const built2 = (name: string) => built(name, A2(), accountChanges("db", (i) => String(1_000_000 + i)));
  /** A state under A2 taking A (the accounts model removed), its removal stopped after its first chunk. */
  async function accountsRemovedPartWay(): Promise<Store> {
    const store = await built2("state");
    const { domain, definitions } = compiled(A());
    const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
    const plan = await runs.start(definitions, () => true, false);
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-model model accounts"]);
    await stopped;
    return store;
  }
  /** A connector reading the accounts table again, all of it in one batch. */
  const accountsRereader =
    (store: Store): Rereader =>
    (runs: () => Runs): SourceConnector => {
      const { domain } = compiled(A2());
      return {
        reread: async (request: { runId: string }) => {
          void (async () => {
            const cs = accountChanges(runStream(request.runId), (i) => (i === ACCOUNTS - 1 ? "complete" : JSON.stringify({ rows: i + 1 })));
            await applyBatch(store, domain, cs, T);
            runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), "complete"]]), commitTimes: new Map(), seconds: 0 });
          })();
        },
      } as unknown as SourceConnector;
    };

  it("a property redone whole, its redo cut short too, then taken out: it is removed", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    // B: lifetime_value's filter changed, cut once its rebuild wrote a chunk.
    {
      const { domain, definitions } = compiled(filterChanged());
      const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
      await runs.start(definitions, () => true, false);
      await stopped;
    }
    // A again: computed again over every record; cut once that rebuild wrote a chunk.
    {
      const { domain, definitions } = compiled(A());
      const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.kind === "rebuild" && r.state === "running" && r.processed > 0) });
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["rebuild property lifetime_value"]);
      await stopped;
      // Still redone, whatever the config, until that Run is done.
      expect(store.metaWithPrefix<{ id: string; redo: boolean }>("unsettled:").map((u) => [u.id, u.redo])).toEqual([["lifetime_value", true]]);
    }
    // C: lifetime_value taken out.
    const planned = await settled(store, ltvRemoved());
    const fresh = await built("fresh", ltvRemoved());
    const withLtv = [...store.recordsOf("users")].filter((r) => "lifetime_value" in r.values).length;
    expect({ planned, withLtv }).toEqual({ planned: ["remove-group group high_value", "remove-property property lifetime_value", "export destination crm"], withLtv: 0 });
    expect(dump(store, ltvRemoved())).toEqual(dump(fresh, ltvRemoved()));
  });

  it("a source added that its connector reads whole (recorded at the end of the plan, its aggregate rebuilt by a Run), cut, then undone: it is removed", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    const B = () => [
      ...replace(A(), "vips", (o) => ({ ...o, rules: [{ propertyId: "vip", op: "eq", match: false }] })),
      { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } },
      { class: "property", id: "refund_total", type: "float", sourceId: "refunds_table", options: { column: "amount", aggregationMethod: "sum" } },
    ];
    // The new source's connector reads it from its start (needsReread false: a table import with no watermark yet, a topic not yet consumed).
    const needsReread = (id: string) => id !== "refunds_table";
    const { domain, definitions } = compiled(B());
    const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
    const plan = await runs.start(definitions, needsReread, false);
    // Since 2026-12-03 its aggregate gets a rebuild (records with no refunds get 0), cut here as it runs.
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["rebuild property refund_total", "backfill group vips"]);
    expect([...new Set(plan.updates.map((u) => `${u.cls}:${u.id}`))].sort()).toEqual(["sources:refunds_table"]);
    await stopped;
    // Streaming under B meanwhile: the new source's rows arrive.
    await applyBatch(store, domain, Array.from({ length: 300 }, (_, i) => change("refunds_table", "insert", String(i + 1), { id: i + 1, user_id: i + 1, amount: 5 }, T)), T);
    expect(store.metaWithPrefix<{ id: string }>("unsettled:").map((u) => u.id)).toEqual(["vips", "refund_total", "refunds_table"]);
    // Undone.
    const planned = await settled(store, A());
    const fresh = await built("fresh", A());
    const withRefund = [...store.recordsOf("users")].filter((r) => "refund_total" in r.values).length;
    expect({ planned, withRefund, rows: store.rowCount("refunds_table") }).toEqual({ planned: ["remove-property property refund_total", "remove-source source refunds_table", "backfill group vips"], withRefund: 0, rows: 0 });
    expect(dump(store, A(), ["purchases_table", "refunds_table"])).toEqual(dump(fresh, A(), ["purchases_table", "refunds_table"]));
  });

  /** A connector reading users_table again from the table the config names; it stops the Runs after the first chunk if asked to. */
  const rereader = (store: Store, objects: Obj[], stopAfterFirstChunk: boolean, onStop: () => void) => chunkedRereader(store, objects, usersTableRows(objects), { stopAfter: stopAfterFirstChunk ? 1 : -1, onStop });
  const movedUsers = () => replace(A(), "users_table", (o) => ({ ...o, options: { table: "users2" } }));

  it("a primary source moved to another table (its Runs not cut) converges", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    await settled(store, movedUsers(), () => true, rereader(store, movedUsers(), false, () => undefined));
    const fresh = await built("fresh", movedUsers());
    await applyBatch(fresh, compiled(movedUsers()).domain, (USER_TABLES.users2 as Row[]).slice(0, 500).map((row) => user(Number(row.id), row, T)), T);
    expect(store.countOf("records", "users")).toBe(USERS + 500);
    expect(dump(store, movedUsers())).toEqual(dump(fresh, movedUsers()));
  });

  it("a primary source's table change cut during its re-read (after its removal), then undone: the other table's records go", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    const B = movedUsers;
    {
      let stop!: () => void;
      const stoppedReread = new Promise<void>((resolve) => (stop = resolve));
      const { domain, definitions } = compiled(B());
      const { runs } = runner(store, domain, { connector: rereader(store, B(), true, () => stop()) });
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`).slice(-2)).toEqual(["remove-source source users_table", "reread source users_table"]);
      await stoppedReread;
    }
    // Removed on the way: no longer redone, but not at its target either.
    expect(store.metaWithPrefix<{ id: string; redo: boolean }>("unsettled:").find((u) => u.id === "users_table")?.redo).toBe(false);
    const planned = await settled(store, A(), () => true, rereader(store, A(), false, () => undefined));
    const fresh = await built("fresh", A());
    expect({ planned, records: store.countOf("records", "users"), has3001: store.getRecord("users", String(USERS + 1)) !== undefined }).toEqual({
      planned: ["remove-source source users_table", "reread source users_table"],
      records: USERS,
      has3001: false,
    });
    expect(dump(store, A())).toEqual(dump(fresh, A()));
  });

  it("a destination's mapping change undone part-way: a record deleted meanwhile is deleted at the destination", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    const remote = new Map<string, Obj>();
    await deliver(store, "crm", remote);
    expect(remote.size).toBe(USERS);
    const B = () => A().map((o) => (o.class === "destination" ? { ...o, mapping: { id: "user_id", email: "email", count: "purchase_count" } } : o));
    {
      const { domain, definitions } = compiled(B());
      const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
      await runs.start(definitions, () => true, false);
      await stopped;
      // Streaming under B: user 5 deleted (its delete waits in the outbox: the destination is slow).
      await applyBatch(store, domain, [change("users_table", "delete", "5", null, T)], T);
    }
    expect(store.outboxOf("crm", 10_000).filter((e) => e.toDelete).map((e) => e.recordId)).toEqual(["5"]);
    const planned = await settled(store, A());
    expect(planned).toEqual(["export destination crm"]);
    await deliver(store, "crm", remote);
    // A fresh daemon's destination (a new table) never holds 5: nor does this one.
    expect({ has5: remote.has("5"), pendingDeletes: store.outboxOf("crm", 10_000).filter((e) => e.toDelete).length }).toEqual({ has5: false, pendingDeletes: 0 });
  });

  it("the same delete after an export Run that was not cut is sent (the control)", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    const remote = new Map<string, Obj>();
    await deliver(store, "crm", remote);
    const B = () => A().map((o) => (o.class === "destination" ? { ...o, mapping: { id: "user_id", email: "email", count: "purchase_count" } } : o));
    const { domain } = compiled(B());
    await settled(store, B());
    await applyBatch(store, domain, [change("users_table", "delete", "5", null, T)], T);
    await settled(store, A());
    await deliver(store, "crm", remote);
    expect(remote.has("5")).toBe(false);
  });
  it("a model's removal cut part-way, then undone: the model is built again whole", { timeout: 60_000 }, async () => {
    const store = await accountsRemovedPartWay();
    const rereader = accountsRereader(store);
    const planned = await settled(store, A2(), () => true, rereader);
    const fresh = await built2("fresh");
    const counts = (st: Store) => ({ records: st.countOf("records", "accounts"), big: st.countOf("members", "big"), listed: [...st.recordsOf("accounts")].length, rows: st.rowCount("accounts_table") });
    expect({ planned, counts: counts(store) }).toEqual({ planned: ["remove-model model accounts", "reread source accounts_table", "backfill group big"], counts: counts(fresh) });
    expect(dumpState(store, ["accounts"], [], ["big"], [])).toEqual(dumpState(fresh, ["accounts"], [], ["big"], []));
  });
  it("a model rebuilt whole, stopped after its re-read completed: the same config plans only what is left", { timeout: 60_000 }, async () => {
    const store = await accountsRemovedPartWay();
    const rereader = accountsRereader(store);
    {
      // A2: the model redone whole; stopped (a restart) once the re-read is done, after one chunk of the backfill.
      const { domain, definitions } = compiled(A2());
      const reread = () => listRuns(store).some((x) => x.kind === "reread" && x.state === "complete");
      const { runs: r, stopped } = runner(store, domain, { connector: rereader, stopWhen: reread });
      const first = await r.start(definitions, () => true, false);
      const names = first.runs.map((x) => `${x.spec.kind} ${x.target}`);
      expect(names).toEqual(["remove-model model accounts", "reread source accounts_table", "backfill group big"]);
      await stopped;
    }
    const states = listRuns(store).map((x) => `${x.kind}:${x.state}`);
    const { definitions } = compiled(A2());
    const { runs } = runner(store, compiled(A2()).domain, { stopWhen: () => true });
    const again = runs.plan(definitions, () => true, false).runs.map((x) => `${x.spec.kind} ${x.target}`);
    expect({ states, again }).toEqual({ states: ["remove-model:complete", "reread:complete", "backfill:running"], again: ["backfill group big"] });
  });
  it("undoing a primary property's removal cut part-way reads its source again (what a worker refuses, saying the change was cut short)", () => {
    const a = compiled(A()).definitions;
    const b = compiled(replace(A(), "first_name", () => null).map((o) => (o.id === "named_a" ? null : o)).filter((o): o is Obj => o !== null)).definitions;
    const planB = planRuns(a, b, { needsReread: () => true });
    const unsettled = planB.runs.flatMap((r) => r.updates).map((u) => ({ cls: u.cls, id: u.id, target: u.definition, seen: u.definition ?? (a[u.cls][u.id] as never), redo: false }));
    const again = planRuns(a, a, { needsReread: () => true, unsettled }).runs.map((r) => `${r.spec.kind} ${r.target}`);
    expect(again).toEqual(["reread source users_table", "backfill group named_a"]);
  });

  it("a model added, its re-read cut part-way, then undone: the model is removed", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    {
      let stop!: () => void;
      const stoppedReread = new Promise<void>((resolve) => (stop = resolve));
      const { domain, definitions } = compiled(A2());
      // Reads 500 of the accounts, then the Runs stop (a restart).
      const { runs: r } = runner(store, domain, {
        connector: (runs) =>
          ({
            reread: async (request: { runId: string }) => {
              void (async () => {
                const position = JSON.stringify({ rows: 500 });
                const cs: Change[] = accountRows.slice(0, 500).map((row) => ({ sourceId: "accounts_table", op: "insert", key: String(row.id), before: null, after: row, position: { stream: runStream(request.runId), position }, commitTime: T }));
                await applyBatch(store, domain, cs, T);
                runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), position]]), commitTimes: new Map(), seconds: 0 });
                runs().stop();
                stop();
              })();
            },
          }) as unknown as SourceConnector,
      });
      const plan = await r.start(definitions, () => true, false);
      expect(plan.runs.map((x) => `${x.spec.kind} ${x.target}`)).toEqual(["reread source accounts_table", "backfill group big"]);
      await stoppedReread;
      expect(store.countOf("records", "accounts")).toBe(500);
    }
    const { domain, definitions } = compiled(A());
    // At most 200 chunks: a removal that starts over at each chunk never ends.
    let steps = 0;
    const { runs: r, stopped } = runner(store, domain, { stopWhen: () => ++steps >= 200 });
    const plan = await r.start(definitions, () => true, false);
    const names = plan.runs.map((x) => `${x.spec.kind} ${x.target}`);
    await Promise.race([stopped, r.idle()]);
    const removal = listRuns(store).find((x) => x.kind === "remove-model");
    expect({ names, done: steps < 200, removal: removal?.state, left: store.countOf("records", "accounts"), listed: [...store.recordsOf("accounts")].length, rows: store.rowCount("accounts_table") }).toEqual({ names: ["remove-model model accounts"], done: true, removal: "complete", left: 0, listed: 0, rows: 0 });
    expect(store.metaWithPrefix("unsettled:")).toEqual([]);
  });
  it("a change cut short, undone and cut short again, then back to either config, converges (a group, an aggregate)", { timeout: 60_000 }, async () => {
    const vipsB = () => replace(A(), "vips", (o) => ({ ...o, rules: [{ propertyId: "vip", op: "eq", match: false }] }));
    for (const [b, last] of [[vipsB, vipsB], [vipsB, A], [filterChanged, filterChanged], [filterChanged, A]] as const) {
      const store = await built(`s${Math.random()}`, A());
      for (const cfg of [b, A]) {
        const { domain, definitions } = compiled(cfg());
        const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
        const plan = await runs.start(definitions, () => true, false);
        if (plan.runs.length > 0) await stopped;
      }
      await settled(store, last());
      const fresh = await built(`f${Math.random()}`, last());
      expect(dump(store, last())).toEqual(dump(fresh, last()));
      expect(await settled(store, last())).toEqual([]);
    }
  });
});
