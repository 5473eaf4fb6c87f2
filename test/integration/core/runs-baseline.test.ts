// What a state's Runs start from, on real LMDB: a state that records no definitions (an older version
// wrote it) is taken to match the config, groups excepted, and records what it was taken to have, so
// a second start plans nothing; a rebuild whose stored rows lack a column the new definition reads is
// what a state that cannot read its source again cannot carry out (a worker's partition), and fails
// loudly rather than computing values from rows without the column; with a connector that reads again,
// the rebuild becomes a re-read, which a restart on the same config resumes from its position.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { definitionsOf, type Definitions } from "../../../core/definitions.js";
import type { Domain } from "../../../core/domain.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import type { SourceConnector } from "../../../connectors/types.js";
import { listRuns, RUN_COMPLETE, Runs, runStream, storedDefinitions } from "../../../streams/runs.js";
import { asRaw } from "../../helpers/config.js";
import { coreConfigObjects, purchase, user } from "../../helpers/core.js";

type Obj = Record<string, unknown>;
const T = Date.UTC(2026, 10, 1, 12, 0, 0);

function compiled(objects: Obj[]): { domain: Domain; definitions: Definitions } {
  const result = validateObjects(asRaw(objects));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return { domain: result.domain, definitions: definitionsOf(result.config, result.domain) };
}

describe("the definitions a state's Runs start from", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "runs-baseline-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs whose chunked work is stepped to its end as it is scheduled (no pipeline: nothing else runs). */
  const runsOver = (domain: Domain) =>
    new Runs({
      store,
      domain,
      schedule: (work) => void (async () => {
        while (await work.step());
      })(),
      connectorOf: () => undefined,
      logger: pino({ level: "silent" }),
    });

  /** One user with one purchase (its stored row has no currency column), its Runs done. */
  async function statePlannedWithOnePurchase(): Promise<void> {
    const before = compiled(coreConfigObjects());
    await applyBatch(store, before.domain, [user(1), purchase(10, { user_id: 1, amount: 5, state: "paid", sku: "A", created_at: "2026-10-30T00:00:00Z" })], T);
    const first = runsOver(before.domain);
    await first.start(before.definitions, () => true, false);
    await first.idle();
  }
  /** The config with a property filtered on a column the stored purchase rows do not have. */
  const withUsdCount = () => compiled(coreConfigObjects([{ class: "property", id: "usd_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" }, filters: [{ key: "currency", op: "eq", match: "USD" }] }]));

  it("records what a state without definitions is taken to have, so the next start plans nothing", async () => {
    const { domain, definitions } = compiled(coreConfigObjects());
    await applyBatch(store, domain, [user(1, { email: "ada@example.com", vip: "t" }), user(2), purchase(10, { user_id: 1, amount: 120, state: "paid", sku: "A", created_at: "2026-10-30T00:00:00Z" })], T);
    expect(storedDefinitions(store)).toBeUndefined();

    const first = runsOver(domain);
    const plan = await first.start(definitions, () => true, store.isEmpty());
    // Only the groups, whose fingerprints it did not record, are backfilled.
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`).sort()).toEqual(Object.keys(definitions.groups).map((g) => `backfill group ${g}`).sort());
    await first.idle();
    expect(listRuns(store).every((r) => r.state === "complete")).toBe(true);
    expect(storedDefinitions(store)).toEqual(definitions);

    expect(runsOver(domain).plan(definitions, () => true, store.isEmpty())).toEqual({ runs: [], updates: [] });
  });

  it("names a rebuild whose stored rows lack a column the new definition reads, and fails it without a connector that reads again", async () => {
    await statePlannedWithOnePurchase();

    const after = withUsdCount();
    const runs = runsOver(after.domain);
    const plan = runs.plan(after.definitions, () => true, false);
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["rebuild property usd_count"]);
    expect(runs.needingReread(plan)).toEqual(["property usd_count: the stored rows of source purchases_table lack the column currency that the new definition reads"]);

    await runs.start(after.definitions, () => true, false);
    await runs.idle();
    // A failed Run's state is written as the queue moves on (not awaited by idle()).
    const run = await vi.waitFor(() => {
      const found = listRuns(store).find((r) => r.kind === "rebuild" && r.state !== "running");
      if (!found) throw new Error("the rebuild still running");
      return found;
    });
    expect(run).toMatchObject({ state: "failed", error: "the stored rows of source purchases_table lack the column currency that the new definition reads, and its connector cannot read the source again" });
    // Its definition is not recorded: the next start plans it again.
    expect(storedDefinitions(store)?.properties.usd_count).toBeUndefined();
    expect(store.getRecord("users", "1")?.values.usd_count).toBeUndefined();
  });

  it("resumes a rebuild that reads its source again instead, after a restart on the same config", async () => {
    await statePlannedWithOnePurchase();

    const after = withUsdCount();
    // A connector that reads again: its re-read is asked for, and reports its progress as the stream's position.
    const asked: { runId: string; resumeFrom?: string }[] = [];
    const rereading = { reread: async (request: { runId: string; resumeFrom?: string }) => void asked.push(request) } as unknown as SourceConnector;
    const withConnector = () =>
      new Runs({ store, domain: after.domain, schedule: (work) => void (async () => { while (await work.step()); })(), connectorOf: () => rereading, logger: pino({ level: "silent" }) });
    await withConnector().start(after.definitions, () => true, false);
    await vi.waitFor(() => expect(asked).toHaveLength(1));
    const runId = asked[0]?.runId ?? "";
    expect(asked[0]?.resumeFrom).toBeUndefined();
    expect(listRuns(store).find((r) => r.id === runId)).toMatchObject({ kind: "reread", state: "running", spec: { kind: "reread", sourceId: "purchases_table" }, plannedAs: { kind: "rebuild", propertyIds: ["usd_count"] } });
    // Part of it read (its progress is durable), then the daemon stops and starts on the same config.
    await store.transact((tx) => tx.setPosition(runStream(runId), '{"rows":1000,"key":"1000"}'));

    const again = withConnector();
    const plan = await again.start(after.definitions, () => true, false);
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["rebuild property usd_count"]);
    await vi.waitFor(() => expect(asked).toHaveLength(2));
    // The same Run goes on from its position: not superseded, not started over as a new rebuild.
    expect(asked[1]).toMatchObject({ runId, resumeFrom: '{"rows":1000,"key":"1000"}' });
    expect(listRuns(store).filter((r) => r.kind !== "backfill").map((r) => [r.id, r.kind, r.state])).toEqual([[runId, "reread", "running"]]);
  });

  // Before 2026-12-03 such a Run ended with its re-read: the records the source has no rows for (user
  // 2) never got the value of the new property over no rows (count 0), nor the others one computed.
  for (const how of ["as its re-read completes", "after a restart once its re-read had completed"] as const) {
    it(`computes every record's value once the re-read it turned into is done, ${how}`, async () => {
      await statePlannedWithOnePurchase();
      await applyBatch(store, compiled(coreConfigObjects()).domain, [user(2)], T);
      const after = withUsdCount();
      const asked: { runId: string; resumeFrom?: string }[] = [];
      const rereading = { reread: async (request: { runId: string; resumeFrom?: string }) => void asked.push(request) } as unknown as SourceConnector;
      const withConnector = () =>
        new Runs({ store, domain: after.domain, schedule: (work) => void (async () => { while (await work.step()); })(), connectorOf: () => rereading, logger: pino({ level: "silent" }) });
      const first = withConnector();
      await first.start(after.definitions, () => true, false);
      await vi.waitFor(() => expect(asked).toHaveLength(1));
      const runId = asked[0]?.runId ?? "";
      // The connector's last batch commits the re-read's completion with its rows.
      await store.transact((tx) => tx.setPosition(runStream(runId), RUN_COMPLETE));
      const runs = how === "as its re-read completes" ? first : withConnector();
      if (how === "as its re-read completes") first.committed({ positions: new Map([[runStream(runId), RUN_COMPLETE]]) } as unknown as Parameters<Runs["committed"]>[0]);
      else await runs.start(after.definitions, () => true, false);
      await vi.waitFor(() => expect(listRuns(store).find((r) => r.id === runId)).toMatchObject({ kind: "rebuild", state: "complete", spec: { kind: "rebuild", propertyIds: ["usd_count"] } }));
      await runs.idle();
      expect([store.getRecord("users", "1")?.values.usd_count, store.getRecord("users", "2")?.values.usd_count]).toEqual([0, 0]);
      expect(storedDefinitions(store)?.properties.usd_count).toEqual(after.definitions.properties.usd_count);
      // Completed, it is not asked for again after the restart.
      expect(asked).toHaveLength(1);
    });
  }
});
