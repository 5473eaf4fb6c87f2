// A relative-date group's window changed again and again (3 → 7 → 1 → 60 days, an exists rule, 1 month,
// 7 days) while time passes, on real LMDB with 2,100 users (a backfill is two chunks): each
// change's Runs cut after a chunk, with boundaries passing (swept at their instants) and purchases
// changing between chunks, one stretch with the daemon down (one sweep for many boundaries), and a
// destination tracking the group (sync: an exit deletes there) beside one carrying it as a membership.
// At the end the state (records, memberships, counts, boundaries and the time index) and both
// destinations equal a fresh state's built at that instant on the last config from the same rows.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Change, Row } from "../../../core/change.js";
import { Store } from "../../../state/store.js";
import { applyBatch, sweep } from "../../../streams/batch.js";
import { listRuns, Runs } from "../../../streams/runs.js";
import { dumpDifferences, dumpState } from "../../helpers/converge.js";
import { purchase, user } from "../../helpers/core.js";
import { A, compiled, deliver, replace, T, type Obj } from "../../helpers/undone.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const USERS = 2100;
const silent = pino({ level: "silent" });

const tracker: Obj = {
  class: "destination",
  id: "recent_hook",
  type: "webhook",
  appId: "hooks",
  modelId: "users",
  collection: "group",
  groupId: "recent",
  syncMode: "sync",
  options: {},
  mapping: { id: "user_id", last: "last_purchase_at" },
  destinationGroupMemberships: { Recent: "recent" },
};
const config = (rule: Obj): Obj[] => replace([...A(), tracker], "recent", (o) => ({ ...o, rules: [{ propertyId: "last_purchase_at", ...rule }] }));
const within = (n: number, unit = "days") => config({ op: "relative_gt", relativeMatchNumber: n, relativeMatchUnit: unit });
const DESTINATIONS = ["crm", "recent_hook"] as const;

describe("a relative-date window changed while time passes", () => {
  let dir = "";
  const stores: Store[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "relative-windows-"));
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ends as a fresh state at the same instant, destinations included", { timeout: 120_000 }, async () => {
    let now = T;
    let objects = within(3);
    const open = (name: string) => {
      const store = Store.open(join(dir, name));
      stores.push(store);
      return store;
    };
    /** Takes `store` to `to` as the pipeline does: each boundary swept at its instant. */
    const live = async (store: Store, to: number) => {
      const { domain } = compiled(objects);
      for (let next = store.nextBoundaryInstant(); next !== undefined && next <= to; next = store.nextBoundaryInstant()) {
        now = next;
        await sweep(store, domain, next);
      }
      now = to;
    };
    /**
     * Starts `objects` over `store` (a restart or reload): its Runs, one chunk at a time, with
     * `between` after each; stopped after `cut` chunks if given (the next start resumes them).
     */
    const start = async (store: Store, cut?: number, between?: () => Promise<void>) => {
      const { domain, definitions } = compiled(objects);
      let chunks = 0;
      let stopped = false;
      let queue: Promise<void> = Promise.resolve();
      const runs: Runs = new Runs({
        store,
        domain,
        connectorOf: () => undefined as never,
        logger: silent,
        clock: () => now,
        schedule: (work) => {
          queue = queue.then(async () => {
            while (!stopped) {
              const more = await work.step();
              chunks += 1;
              if (chunks === cut) {
                stopped = true;
                runs.stop();
                return;
              }
              await between?.();
              if (!more) return;
            }
          });
        },
      });
      const plan = await runs.start(definitions, () => true, store.isEmpty());
      for (;;) {
        await queue;
        if (stopped) break;
        await Promise.race([runs.idle(), queue.then(() => new Promise((r) => setTimeout(r, 5)))]);
        const left = listRuns(store).filter((r) => r.state === "queued" || r.state === "running");
        if (left.length === 0) break;
      }
      await queue;
      return plan.runs.length;
    };

    // Users, and purchases spread over the last 10 days (some in the future): boundaries every few minutes.
    const rows = new Map<number, Row>();
    const changes: Change[] = [];
    for (let i = 1; i <= USERS; i++) changes.push(user(i, { email: `u${i}@example.com`, first_name: "Ada", vip: i % 2 === 0 }, T));
    for (let i = 1; i <= 2 * USERS; i++) {
      const row = { id: i, user_id: 1 + (i % USERS), amount: 10, state: "paid", sku: "A", created_at: T - ((i * 7919) % (12 * 24 * 60)) * 10 * 60_000 + 2 * DAY + (i % 997) };
      rows.set(i, row);
      changes.push(purchase(i, row, T));
    }
    const store = open("state");
    await start(store);
    const write = async (cs: Change[]) => {
      changes.push(...cs);
      await applyBatch(store, compiled(objects).domain, cs, now);
    };
    await write(changes.splice(0));
    const tables = { crm: new Map<string, Obj>(), recent_hook: new Map<string, Obj>() };
    const deliverAll = async (s: Store, t: typeof tables) => {
      for (const d of DESTINATIONS) await deliver(s, d, t[d]);
    };
    await deliverAll(store, tables);
    let n = 0;
    // Purchases moved earlier, later, to null, and deleted.
    const churn = async () => {
      const cs: Change[] = [];
      for (let k = 0; k < 40; k++) {
        const id = 1 + ((n++ * 104_729) % (2 * USERS));
        if (k % 7 === 0) {
          rows.delete(id);
          cs.push({ ...purchase(id, { id }, now), op: "delete", after: null });
        } else {
          const row = { id, user_id: 1 + ((id * 31) % USERS), amount: 10, state: "paid", sku: "A", created_at: k % 5 === 0 ? null : now + ((k * 3_600_013) % (8 * DAY)) - 6 * DAY };
          cs.push({ ...purchase(id, row, now), op: rows.has(id) ? "update" : "insert" });
          rows.set(id, row);
        }
      }
      await write(cs);
    };
    const passing = async () => {
      await live(store, now + HOUR);
      await churn();
      await deliverAll(store, tables);
    };

    await live(store, now + 5 * HOUR);
    for (const [next, cut] of [
      [within(7), 1],
      [within(1), 2],
      [within(60), 1],
      [config({ op: "exists" }), 1],
      [within(1, "months"), 2],
      [within(7), undefined],
    ] as const) {
      objects = next;
      expect(await start(store, cut, passing)).toBeGreaterThan(0);
      await live(store, now + 3 * HOUR);
      await churn();
    }
    // Down for two days (one sweep for every boundary that passed), then started again on the same config.
    now += 2 * DAY;
    await sweep(store, compiled(objects).domain, now);
    await start(store);
    await deliverAll(store, tables);

    const oracle = open("oracle");
    await start(oracle);
    const { domain } = compiled(objects);
    for (let i = 0; i < changes.length; i += 1000) await applyBatch(oracle, domain, changes.slice(i, i + 1000), now);
    const oracleTables = { crm: new Map<string, Obj>(), recent_hook: new Map<string, Obj>() };
    await deliverAll(oracle, oracleTables);

    const dump = (s: Store) => ({
      ...dumpState(s, ["users"], [...DESTINATIONS], compiled(objects).groups, ["purchases_table"]),
      boundaries: Object.fromEntries([...s.recordsOf("users")].map((r) => [r.id, r.boundaries])),
      index: Object.fromEntries(s.dueBoundaries(Number.MAX_SAFE_INTEGER, 1_000_000).map((e) => [`${e.groupId}/${e.recordId}`, e.instant])),
    });
    // Changes were cut short and redone (superseded), not only run through.
    expect(listRuns(store).filter((r) => r.state === "superseded").length).toBeGreaterThan(0);
    const mine = dump(store);
    const members = store.membersOf("users", "recent").length;
    expect(members).toBeGreaterThan(100);
    expect(dumpDifferences(mine, dump(oracle))).toEqual([]);
    for (const d of DESTINATIONS) expect(dumpDifferences({ [d]: Object.fromEntries(tables[d]) }, { [d]: Object.fromEntries(oracleTables[d]) })).toEqual([]);
    expect(tables.recent_hook.size).toBe(members);
  });
});
