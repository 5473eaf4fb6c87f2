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
import { listRuns, Runs } from "../../streams/runs.js";
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
