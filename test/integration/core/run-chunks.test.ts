// How a Run over scanned records cuts its chunks, on real LMDB: a backfill and a rebuild's writing
// phase read 2,000 records at a time and go on in the same transaction while the chunk has run under
// RUN_CHUNKS.scannedBudgetMs (each commit waits for its fsync), up to 50,000; with a budget of 0 a
// chunk is 2,000 records. Either way the state ends as a fresh state built under the new config.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store as StoreType } from "../../../state/store.js";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { RUN_CHUNKS, Runs } from "../../../streams/runs.js";
import { A, compiled, dumpUsers, nextClock, replace, shopChanges, USERS, type Obj } from "../../helpers/undone.js";

const budget = RUN_CHUNKS.scannedBudgetMs;

const withGroup = (): Obj[] => [...A(), { class: "group", id: "named_b", modelId: "users", rules: [{ propertyId: "first_name", op: "iLike", match: "b%" }] }];
const withFilter = (): Obj[] => replace(A(), "lifetime_value", (o) => ({ ...o, filters: [{ key: "state", op: "eq", match: "refunded" }] }));

describe("a Run's chunks over scanned records", () => {
  const dirs: string[] = [];
  const stores: StoreType[] = [];
  beforeEach(() => {
    dirs.length = 0;
    stores.length = 0;
  });
  afterEach(async () => {
    RUN_CHUNKS.scannedBudgetMs = budget;
    for (const store of stores) await store.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function built(objects: Obj[]): Promise<StoreType> {
    const dir = mkdtempSync(join(tmpdir(), "run-chunks-"));
    dirs.push(dir);
    const store = Store.open(dir);
    stores.push(store);
    const { domain, definitions } = compiled(objects);
    await new Runs({ store, domain, schedule: () => undefined, connectorOf: () => undefined, logger: pino({ level: "silent" }) }).start(definitions, () => false, true);
    const changes = shopChanges();
    for (let i = 0; i < changes.length; i += 1000) await applyBatch(store, domain, changes.slice(i, i + 1000), Date.UTC(2026, 10, 1, 12));
    return store;
  }

  /** Takes `store` to `objects`; returns each chunk's count of items by Run kind. */
  async function change(store: StoreType, objects: Obj[]): Promise<Record<string, number[]>> {
    const { domain, definitions } = compiled(objects);
    const chunks: Record<string, number[]> = {};
    const runs = new Runs({
      store,
      domain,
      connectorOf: () => undefined,
      logger: pino({ level: "silent" }),
      clock: nextClock(),
      events: { progressed: (run, items) => void (items > 0 && (chunks[run.kind] ??= []).push(items)) },
      schedule: (work) =>
        void (async () => {
          while (await work.step());
        })(),
    });
    await runs.start(definitions, () => true, false);
    await runs.idle();
    return chunks;
  }

  it.each([
    ["a group added (a backfill)", withGroup, "backfill"],
    ["an aggregate's filter changed (a rebuild from its rows)", withFilter, "rebuild"],
  ])("%s: 2,000 records a chunk with no budget, one chunk with a long one", { timeout: 60_000 }, async (_name, objects, kind) => {
    const fresh = await built(objects());
    RUN_CHUNKS.scannedBudgetMs = 0;
    const cut = await built(A());
    expect((await change(cut, objects()))[kind]).toEqual([2000, 1000]);
    RUN_CHUNKS.scannedBudgetMs = 60_000;
    const whole = await built(A());
    expect((await change(whole, objects()))[kind]).toEqual([USERS]);
    expect(dumpUsers(cut, objects())).toEqual(dumpUsers(fresh, objects()));
    expect(dumpUsers(whole, objects())).toEqual(dumpUsers(fresh, objects()));
  });
});
