// What the tests of config changes cut short share (test/integration/core/runs-undone*.test.ts): the
// core config's states built on real LMDB from 3,000 users and 6,000 purchases, Runs stepped as the
// pipeline steps them and stopped where a test cuts them (as a reload or a restart would), and a fake
// destination table the outbox is delivered to.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, expect } from "vitest";
import type { SourceConnector } from "../../connectors/types.js";
import type { Change, Row } from "../../core/change.js";
import { definitionsOf, type Definitions } from "../../core/definitions.js";
import type { Domain } from "../../core/domain.js";
import { validateObjects } from "../../daemon/config/validate.js";
import { Store } from "../../state/store.js";
import { applyBatch } from "../../streams/batch.js";
import { listRuns, Runs, runStream } from "../../streams/runs.js";
import { asRaw } from "./config.js";
import { dumpState } from "./converge.js";
import { coreConfigObjects, purchase, user } from "./core.js";

export type Obj = Record<string, unknown>;
export const USERS = 3000;
export const T = Date.UTC(2026, 10, 1, 12, 0, 0);
const silent = pino({ level: "silent" });

let starts = 0;
/** A clock of its own for each Runs (a millisecond apart), so that Run ids differ between starts, as in a daemon. */
export const nextClock = (): (() => number) => {
  const at = T + ++starts;
  return () => at;
};

export function compiled(objects: Obj[]): { domain: Domain; definitions: Definitions; groups: string[] } {
  const result = validateObjects(asRaw(objects));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return { domain: result.domain, definitions: definitionsOf(result.config, result.domain), groups: [...result.domain.groups.keys()] };
}

/** The config every state is built under first, and the same with one object changed (or, for null, taken out). */
export const A = (): Obj[] => coreConfigObjects();
export const replace = (objects: Obj[], id: string, f: (o: Obj) => Obj | null): Obj[] => objects.flatMap((o) => (o.id === id && o.class !== "destination" ? [f(o)].filter((x): x is Obj => x !== null) : [o]));

export const userRow = (i: number): Row => ({ id: i, email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 2 === 0 });

/** Users with every other one a vip and named A or B; two purchases each, some refunded. */
export function shopChanges(amount: (i: number) => number = (i) => (i % 90) + 10): Change[] {
  const out: Change[] = [];
  for (let i = 1; i <= USERS; i += 1) out.push(user(i, { email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 2 === 0 }, T));
  for (let i = 1; i <= 2 * USERS; i += 1) {
    out.push(purchase(i, { user_id: 1 + (i % USERS), amount: amount(i), state: i % 5 ? "paid" : "refunded", sku: i % 2 ? "A" : "B", created_at: T - (i % 5) * 86_400_000 }, T));
  }
  return out;
}

/** What the state holds of the users model (records, memberships, counts, the purchases' rows). */
export const dumpUsers = (store: Store, objects: Obj[], sources = ["purchases_table"]) => dumpState(store, ["users"], [], compiled(objects).groups, sources);

/** A connector for Runs that read a source again, handed the Runs it reports to. */
export type Rereader = (runs: () => Runs) => SourceConnector;

/**
 * Runs whose chunked work is stepped as the pipeline steps it: `between` after each chunk (the source
 * changing meanwhile), then, once `stopWhen` holds, the Runs stop (as a reload would) and `stopped` resolves.
 */
export function runner(store: Store, domain: Domain, options: { stopWhen?: () => boolean; connector?: Rereader; between?: () => Promise<void> } = {}): { runs: Runs; stopped: Promise<void> } {
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const r: Runs = new Runs({
    store,
    domain,
    connectorOf: () => connector,
    logger: silent,
    clock: nextClock(),
    schedule: (work) =>
      void (async () => {
        for (;;) {
          const more = await work.step();
          await options.between?.();
          if (options.stopWhen?.()) {
            r.stop();
            stop();
            return;
          }
          if (!more) return;
        }
      })(),
  });
  const connector = options.connector?.(() => r);
  return { runs: r, stopped };
}

/** A second model, accounts (a third of them on the "big" plan, a group), beside the users; with a destination of its own if asked. */
export const accountsObjects = (destination = false): Obj[] => [
  { class: "model", id: "accounts" },
  { class: "source", id: "accounts_table", type: "postgres-cdc", appId: "db", modelId: "accounts", options: { table: "accounts" }, mapping: { id: "account_id" } },
  { class: "property", id: "account_id", type: "integer", unique: true, sourceId: "accounts_table", options: { column: "id" } },
  { class: "property", id: "plan", type: "string", sourceId: "accounts_table", options: { column: "plan" } },
  { class: "group", id: "big", modelId: "accounts", rules: [{ propertyId: "plan", op: "eq", match: "big" }] },
  ...(destination ? [{ class: "destination", id: "acct_hook", type: "webhook", appId: "hooks", modelId: "accounts", collection: "model", syncMode: "sync", options: {}, mapping: { id: "account_id", plan: "plan" } }] : []),
];
export const accountRow = (i: number): Row => ({ id: i, plan: i % 3 ? "small" : "big" });
/** Account i inserted (or, for a null row, deleted) at a position of a stream. */
export const accountChange = (i: number, stream: string, position: string, row: Row | null = accountRow(i)): Change => ({ sourceId: "accounts_table", op: row ? "insert" : "delete", key: String(i), before: null, after: row, position: { stream, position }, commitTime: T });

/** users2: 500 users the users table does not have first, then the same 3,000 (a primary source moved to another table). */
export const USER_TABLES: Record<string, Row[]> = {
  users: Array.from({ length: USERS }, (_, i) => userRow(i + 1)),
  users2: [...Array.from({ length: 500 }, (_, i) => userRow(USERS + 1 + i)), ...Array.from({ length: USERS }, (_, i) => userRow(i + 1))],
};
/** The rows of users_table from the table `objects` name for it. */
export const usersTableRows = (objects: Obj[]) => (): [string, Row][] => (USER_TABLES[String((objects.find((o) => o.id === "users_table")?.options as Obj).table)] as Row[]).map((row) => [String(row.id), row]);

/**
 * A connector that reads a source again 500 rows a chunk (`rowsOf` gives them), each chunk committed
 * with its progress as a re-read's position, from where a resumed Run left off; after `stopAfter`
 * chunks it stops the Runs (a restart) and calls `onStop`. `requests` records each re-read asked of it.
 */
export function chunkedRereader(store: Store, objects: Obj[], rowsOf: (sourceId: string) => [string, Row][], options: { stopAfter?: number; onStop?: () => void; requests?: string[] } = {}): Rereader {
  return (runs) => {
    const { domain } = compiled(objects);
    return {
      reread: async (request: { runId: string; sourceIds: readonly string[]; resumeFrom?: string }) => {
        options.requests?.push(`${request.runId} from ${request.resumeFrom ?? "start"}`);
        void (async () => {
          const sourceId = request.sourceIds[0] as string;
          const rows = rowsOf(sourceId);
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
            if (chunks === options.stopAfter) {
              runs().stop();
              options.onStop?.();
              return;
            }
          }
        })();
      },
    } as unknown as SourceConnector;
  };
}

/** Delivers everything pending of a destination to a fake remote table, as the destination would hold it. */
export async function deliver(store: Store, destinationId: string, table: Map<string, Obj>): Promise<void> {
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

/** States in a temporary directory of the test's own, closed and removed after it. */
export function undoneStates(prefix: string) {
  let dir = "";
  const stores: Store[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    /** A state built under `objects` from the changes (the shop's, then `extra`): its definitions recorded first, as a first start does. */
    async built(name: string, objects: Obj[], extra: readonly Change[] = [], changes: readonly Change[] = shopChanges()): Promise<Store> {
      const store = Store.open(join(dir, name));
      stores.push(store);
      const { domain, definitions } = compiled(objects);
      await runner(store, domain).runs.start(definitions, () => true, store.isEmpty());
      const all = [...changes, ...extra];
      for (let i = 0; i < all.length; i += 600) await applyBatch(store, domain, all.slice(i, i + 600), T);
      return store;
    },
    /** Takes `store` to `objects` until its Runs are done (`writes` one batch after each chunk, the rest at the end); the Runs it planned. */
    async settled(store: Store, objects: Obj[], options: { needsReread?: (id: string) => boolean; connector?: Rereader; writes?: Change[][] } = {}): Promise<string[]> {
      const { domain, definitions } = compiled(objects);
      const left = [...(options.writes ?? [])];
      const apply = async () => {
        const batch = left.shift();
        if (batch) await applyBatch(store, domain, batch, T);
      };
      const { runs } = runner(store, domain, { ...(options.connector ? { connector: options.connector } : {}), between: apply });
      const plan = await runs.start(definitions, options.needsReread ?? (() => true), false);
      await runs.idle();
      while (left.length > 0) await apply();
      expect(listRuns(store).filter((run) => run.state === "running" || run.state === "queued" || run.state === "failed").map((r) => [r.kind, r.target, r.state, r.error])).toEqual([]);
      return plan.runs.map((run) => `${run.spec.kind} ${run.target}`);
    },
  };
}
