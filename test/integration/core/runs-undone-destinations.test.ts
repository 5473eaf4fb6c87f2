// A config change undone part-way converges, on real LMDB: a model's removal cut short during its
// destination's removal (accounts deleted at the source meanwhile), a destination's reset cut short
// (a record changed meanwhile), and a primary source moved to another table restarted during its
// re-read, which resumes. Each compared with a fresh state, or with what a fresh destination holds.
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

const userRow = (i: number): Row => ({ id: i, email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 2 === 0 });
function changes(): Change[] {
  const out: Change[] = [];
  for (let i = 1; i <= USERS; i += 1) out.push(user(i, { email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 2 === 0 }, T));
  for (let i = 1; i <= 2 * USERS; i += 1) {
    out.push(purchase(i, { user_id: 1 + (i % USERS), amount: (i % 90) + 10, state: i % 5 ? "paid" : "refunded", sku: i % 2 ? "A" : "B", created_at: T - (i % 5) * 86_400_000 }, T));
  }
  return out;
}

const A = (): Obj[] => coreConfigObjects();
const replace = (objects: Obj[], id: string, f: (o: Obj) => Obj | null): Obj[] => objects.flatMap((o) => (o.id === id && o.class !== "destination" ? [f(o)].filter((x): x is Obj => x !== null) : [o]));

describe("a config change undone part-way: destinations and restarts", () => {
  let dir: string;
  const stores: Store[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "zz-review2-"));
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function runner(store: Store, domain: Domain, stopWhen: (() => boolean) | undefined, connector?: (runs: () => Runs) => SourceConnector): { runs: Runs; stopped: Promise<void> } {
    let stoppedResolve!: () => void;
    const stopped = new Promise<void>((resolve) => (stoppedResolve = resolve));
    const conn = connector?.(() => r);
    const r: Runs = new Runs({
      store,
      domain,
      connectorOf: () => conn,
      logger: silent,
      clock: nextClock(),
      schedule: (work) =>
        void (async () => {
          while (await work.step()) {
            if (stopWhen?.()) {
              r.stop();
              stoppedResolve();
              return;
            }
          }
          if (stopWhen?.()) {
            r.stop();
            stoppedResolve();
          }
        })(),
    });
    return { runs: r, stopped };
  }

  async function built(name: string, objects: Obj[], extra: Change[] = []): Promise<Store> {
    const store = Store.open(join(dir, name));
    stores.push(store);
    const { domain, definitions } = compiled(objects);
    await runner(store, domain, undefined).runs.start(definitions, () => true, store.isEmpty());
    const all = [...changes(), ...extra];
    for (let i = 0; i < all.length; i += 600) await applyBatch(store, domain, all.slice(i, i + 600), T);
    return store;
  }

  async function settled(store: Store, objects: Obj[], needsReread: (id: string) => boolean = () => true, connector?: (runs: () => Runs) => SourceConnector): Promise<string[]> {
    const { domain, definitions } = compiled(objects);
    const { runs } = runner(store, domain, undefined, connector);
    const plan = await runs.start(definitions, needsReread, false);
    await runs.idle();
    expect(listRuns(store).filter((run) => run.state === "running" || run.state === "queued" || run.state === "failed").map((r) => [r.kind, r.target, r.state, r.error])).toEqual([]);
    return plan.runs.map((run) => `${run.spec.kind} ${run.target}`);
  }

  /** Delivers everything pending of a destination to a fake remote table. */
  async function deliver(store: Store, destinationId: string, table: Map<string, Obj>): Promise<void> {
    const outbox = store.outboxFor(destinationId);
    for (;;) {
      const pending = outbox.pending(1000, T, new Set(), new Set());
      if (pending.length === 0) return;
      const sending = await outbox.markSending(pending);
      for (const e of sending) {
        if (e.toDelete) table.delete(e.recordId);
        else table.set(e.recordId, { ...e.newRecordProperties, groups: [...e.newGroups].sort() });
      }
      await outbox.complete(sending.map((entry) => ({ entry, status: "ok" as const })));
    }
  }

  // ---------------------------------------------------------------------------------------------
  const ACCOUNTS = 2000;
  const accounts = [
    { class: "model", id: "accounts" },
    { class: "source", id: "accounts_table", type: "postgres-cdc", appId: "db", modelId: "accounts", options: { table: "accounts" }, mapping: { id: "account_id" } },
    { class: "property", id: "account_id", type: "integer", unique: true, sourceId: "accounts_table", options: { column: "id" } },
    { class: "property", id: "plan", type: "string", sourceId: "accounts_table", options: { column: "plan" } },
    { class: "group", id: "big", modelId: "accounts", rules: [{ propertyId: "plan", op: "eq", match: "big" }] },
    { class: "destination", id: "acct_hook", type: "webhook", appId: "hooks", modelId: "accounts", collection: "model", syncMode: "sync", options: {}, mapping: { id: "account_id", plan: "plan" } },
  ];
  const A2 = () => [...A(), ...accounts];
  const accountRow = (i: number) => ({ id: i, plan: i % 3 ? "small" : "big" });
  const accountChange = (i: number, stream: string, position: string, row: Row | null = accountRow(i)): Change => ({ sourceId: "accounts_table", op: row ? "insert" : "delete", key: String(i), before: null, after: row, position: { stream, position }, commitTime: T });

  it("a model's removal cut during its destination's removal, accounts deleted at the source meanwhile, undone: they are deleted at the destination", { timeout: 60_000 }, async () => {
    const store = await built("state", A2(), Array.from({ length: ACCOUNTS }, (_, i) => accountChange(i + 1, "db", String(2_000_000 + i))));
    const remote = new Map<string, Obj>();
    await deliver(store, "acct_hook", remote);
    expect(remote.size).toBe(ACCOUNTS);
    // Ten accounts change (their exports queued, not yet sent).
    await applyBatch(store, compiled(A2()).domain, Array.from({ length: 10 }, (_, i) => ({ ...accountChange(500 + i, "db", String(3_000_000 + i), { id: 500 + i, plan: "big" }), op: "update" as const })), T);
    // B: accounts removed (with its destination), cut once the destination's removal dropped its outbox.
    {
      const { domain, definitions } = compiled(A());
      const { runs, stopped } = runner(store, domain, () => listRuns(store).some((r) => r.state === "running" && r.processed > 0));
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-destination destination acct_hook", "remove-model model accounts"]);
      await stopped;
    }
    // Meanwhile accounts 1..100 are deleted at the source (B does not read it): the table holds 101..2000.
    const rereader = (runs: () => Runs): SourceConnector => {
      const { domain } = compiled(A2());
      return {
        reread: async (request: { runId: string }) => {
          void (async () => {
            const cs = Array.from({ length: ACCOUNTS - 100 }, (_, i) => {
              const n = i + 101;
              return accountChange(n, runStream(request.runId), n === ACCOUNTS ? "complete" : JSON.stringify({ rows: i + 1 }), n >= 500 && n < 510 ? { id: n, plan: "big" } : accountRow(n));
            });
            await applyBatch(store, domain, cs, T);
            runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), "complete"]]), commitTimes: new Map(), seconds: 0 });
          })();
        },
      } as unknown as SourceConnector;
    };
    const planned = await settled(store, A2(), () => true, rereader);
    await deliver(store, "acct_hook", remote);
    const gone = [...remote.keys()].filter((id) => Number(id) <= 100).length;
    expect({ planned, records: store.countOf("records", "accounts"), remote: remote.size, gone }).toEqual({ planned, records: ACCOUNTS - 100, remote: ACCOUNTS - 100, gone: 0 });
  });

  it("a destination's app change (a reset) cut part-way, then undone: a record changed meanwhile is sent to the original destination", { timeout: 60_000 }, async () => {
    const withHooks2 = (objects: Obj[]) => [...objects, { class: "app", id: "hooks2", type: "webhook", options: { url: "https://other.example.com" } }];
    const A3 = () => withHooks2(A());
    const B = () => withHooks2(A()).map((o) => (o.class === "destination" ? { ...o, appId: "hooks2" } : o));
    const store = await built("state", A3());
    const remoteA = new Map<string, Obj>();
    const remoteB = new Map<string, Obj>();
    await deliver(store, "crm", remoteA);
    expect(remoteA.size).toBe(USERS);
    {
      const { domain, definitions } = compiled(B());
      const { runs, stopped } = runner(store, domain, () => listRuns(store).some((r) => r.state === "running" && r.processed > 0));
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target} ${JSON.stringify(r.spec)}`)).toEqual([expect.stringContaining('"reset":true')]);
      await stopped;
      // Streaming under B: user 2000's email changes; delivered to B's app.
      await applyBatch(store, domain, [{ ...user(2000, { email: "new2000@example.com", first_name: "Ada", vip: true }, T), op: "update" }], T);
      await deliver(store, "crm", remoteB);
    }
    const planned = await settled(store, A3());
    await deliver(store, "crm", remoteA);
    expect({ planned, email2000: remoteA.get("2000")?.email }).toEqual({ planned: ["export destination crm"], email2000: "new2000@example.com" });
  });

  it("the same with its Runs not cut (the control)", { timeout: 60_000 }, async () => {
    const withHooks2 = (objects: Obj[]) => [...objects, { class: "app", id: "hooks2", type: "webhook", options: { url: "https://other.example.com" } }];
    const A3 = () => withHooks2(A());
    const B = () => withHooks2(A()).map((o) => (o.class === "destination" ? { ...o, appId: "hooks2" } : o));
    const store = await built("state", A3());
    const remoteA = new Map<string, Obj>();
    const remoteB = new Map<string, Obj>();
    await deliver(store, "crm", remoteA);
    await settled(store, B());
    await applyBatch(store, compiled(B()).domain, [{ ...user(2000, { email: "new2000@example.com", first_name: "Ada", vip: true }, T), op: "update" }], T);
    await deliver(store, "crm", remoteB);
    await settled(store, A3());
    await deliver(store, "crm", remoteA);
    expect(remoteA.get("2000")?.email).toBe("new2000@example.com");
  });

  /** users2: 500 users the users table does not have first, then the same 3000. */
  const tables: Record<string, Row[]> = {
    users: Array.from({ length: USERS }, (_, i) => userRow(i + 1)),
    users2: [...Array.from({ length: 500 }, (_, i) => userRow(USERS + 1 + i)), ...Array.from({ length: USERS }, (_, i) => userRow(i + 1))],
  };
  const rereader =
    (store: Store, objects: Obj[], stopAfterChunks: number, onStop: () => void, seen?: string[]) =>
    (runs: () => Runs): SourceConnector => {
      const { domain } = compiled(objects);
      const table = String((objects.find((o) => o.id === "users_table")?.options as Obj).table);
      return {
        reread: async (request: { runId: string; sourceIds: readonly string[]; resumeFrom?: string }) => {
          seen?.push(`${request.runId} from ${request.resumeFrom ?? "start"}`);
          void (async () => {
            const rows = tables[table] as Row[];
            const from = request.resumeFrom ? ((JSON.parse(request.resumeFrom) as { rows: number }).rows ?? 0) : 0;
            let chunks = 0;
            for (let at = from; at < rows.length; at += 500) {
              const chunk = rows.slice(at, at + 500);
              const complete = at + 500 >= rows.length;
              const position = JSON.stringify({ rows: at + chunk.length, ...(complete ? { complete: true } : {}) });
              const cs: Change[] = chunk.map((row) => ({ sourceId: "users_table", op: "insert", key: String(row.id), before: null, after: row, position: { stream: runStream(request.runId), position }, commitTime: T }));
              await applyBatch(store, domain, cs, T);
              runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), position]]), commitTimes: new Map(), seconds: 0 });
              chunks += 1;
              if (chunks === stopAfterChunks) {
                runs().stop();
                onStop();
                return;
              }
            }
          })();
        },
      } as unknown as SourceConnector;
    };
  const movedUsers = () => replace(A(), "users_table", (o) => ({ ...o, options: { table: "users2" } }));

  it("a primary source moved to another table, restarted during its re-read on the same config: the re-read resumes", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    {
      let stop!: () => void;
      const stoppedReread = new Promise<void>((resolve) => (stop = resolve));
      const { domain, definitions } = compiled(movedUsers());
      const { runs } = runner(store, domain, undefined, rereader(store, movedUsers(), 3, () => stop()));
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-source source users_table", "reread source users_table"]);
      await stoppedReread;
    }
    const before = listRuns(store).find((r) => r.kind === "reread");
    expect(before?.state).toBe("running");
    expect(store.position(runStream(before?.id ?? ""))).toBe(JSON.stringify({ rows: 1500 }));
    const seen: string[] = [];
    await settled(store, movedUsers(), () => true, rereader(store, movedUsers(), -1, () => undefined, seen));
    expect({ runs: listRuns(store).map((r) => `${r.kind}:${r.state}${r.error ? `:${r.error}` : ""}`), seen }).toEqual({
      runs: ["remove-source:complete", "reread:complete"],
      seen: [`${before?.id} from ${JSON.stringify({ rows: 1500 })}`],
    });
  });
});
