// A Run over every record keeps to the outbox bound, on real LMDB: a destination added to a state of
// 1,200 records plans their exports a chunk (500 records) at a time, and a chunk waits while the
// outbox holds its bound, until it is below half (as the sources do); so the outbox never holds more
// than the bound plus one chunk. A reset of a destination whose outbox is full still empties it first
// (waiting for that outbox to drain before dropping it could wait for ever), and counts only its
// records as done.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { DeliverableExport, DestinationConnector, ExportResult } from "../../../connectors/types.js";
import { definitionsOf, type Definitions } from "../../../core/definitions.js";
import type { Domain } from "../../../core/domain.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { Store, type OutboxEntry } from "../../../state/store.js";
import { Backpressure } from "../../../streams/backpressure.js";
import { applyBatch } from "../../../streams/batch.js";
import { Delivery, DEFAULT_DELIVERY_OPTIONS } from "../../../streams/delivery.js";
import { stateStatus } from "../../../streams/inspect.js";
import { listRuns, Runs } from "../../../streams/runs.js";
import { asRaw } from "../../helpers/config.js";
import { coreConfigObjects, purchase, user } from "../../helpers/core.js";
import { waitFor } from "../../helpers/daemon.js";

type Obj = Record<string, unknown>;
const RECORDS = 1200;
const BOUND = 100;
const T = Date.UTC(2026, 10, 1, 12, 0, 0);

function compiled(objects: Obj[]): { domain: Domain; definitions: Definitions } {
  const result = validateObjects(asRaw(objects));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return { domain: result.domain, definitions: definitionsOf(result.config, result.domain) };
}

const withoutDestinations = () => coreConfigObjects().filter((o) => o.class !== "destination");
const withCrm = (options: Obj = {}) => coreConfigObjects().map((o) => (o.class === "destination" && o.id === "crm" ? { ...o, options } : o));

describe("Runs under the outbox bound", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "runs-outbox-bound-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs stepped as the pipeline would (one step after the other), holding while crm's outbox is at BOUND; the deepest outbox after any step. */
  function runsUnderBound(domain: Domain) {
    const backpressure = new Backpressure({ highWaterMark: Number.MAX_SAFE_INTEGER, lowWaterMark: Number.MAX_SAFE_INTEGER, outboxBound: BOUND }, { changed: () => undefined });
    const seen = { deepest: 0, waits: 0 };
    const logged: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logged.push((JSON.parse(line) as { msg: string }).msg) });
    const runs = new Runs({
      store,
      domain,
      schedule: (work) =>
        void (async () => {
          while (await work.step()) seen.deepest = Math.max(seen.deepest, store.outboxDepth("crm"));
          seen.deepest = Math.max(seen.deepest, store.outboxDepth("crm"));
        })(),
      connectorOf: () => undefined,
      logger,
      exportsHeld: () => backpressure.outboxHeld([store.outboxDepth("crm")]),
    });
    return { runs, seen, logged };
  }

  /** A destination that takes whatever it is sent. */
  function delivering(): { delivery: Delivery<OutboxEntry>; received: Set<string> } {
    const received = new Set<string>();
    const connector: DestinationConnector = {
      destinationId: "crm",
      deliver: async (batch: readonly DeliverableExport[]): Promise<ExportResult[]> => {
        for (const e of batch) received.add(e.recordId);
        return batch.map((e) => ({ seq: e.seq, status: "ok" }));
      },
      ready: () => true,
      stop: async () => undefined,
    };
    return { delivery: new Delivery<OutboxEntry>(connector, store.outboxFor("crm"), { completed: () => undefined, failed: () => undefined }, { ...DEFAULT_DELIVERY_OPTIONS, batchSize: 50, concurrency: 1 }), received };
  }

  async function stateOf1200Records(): Promise<void> {
    const before = compiled(withoutDestinations());
    const first = new Runs({ store, domain: before.domain, schedule: () => undefined, connectorOf: () => undefined, logger: pino({ level: "silent" }) });
    await first.start(before.definitions, () => true, store.isEmpty());
    for (let from = 1; from <= RECORDS; from += 400) await applyBatch(store, before.domain, Array.from({ length: 400 }, (_, i) => user(from + i, { email: `u${from + i}@example.com` })), T);
    expect(store.outboxDepth("crm")).toBe(0);
  }

  it("plans a new destination's exports a chunk at a time, waiting while its outbox holds its bound", async () => {
    await stateOf1200Records();
    const after = compiled(withCrm());
    const { runs, seen, logged } = runsUnderBound(after.domain);
    const plan = await runs.start(after.definitions, () => true, false);
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["export destination crm"]);

    // Nothing delivers: one chunk of 500 is planned, then the Run waits (it stays "running", at 500).
    await waitFor("the first chunk", async () => (store.outboxDepth("crm") === 500 ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(store.outboxDepth("crm")).toBe(500);
    expect(listRuns(store).map((r) => [r.kind, r.state, r.processed])).toEqual([["export", "running", 500]]);
    expect(logged.filter((m) => m.startsWith("run waits"))).toEqual(["run waits: a destination's outbox holds its bound (--outbox-bound)"]);
    // `status` shows the new destination's outbox, though its definition is recorded only when its Run ends.
    expect(stateStatus(store).outbox).toEqual([{ destination: "crm", depth: 500 }]);

    // Delivered, the outbox drains below half its bound, the Run goes on, and every record arrives.
    const { delivery, received } = delivering();
    delivery.start();
    await runs.idle();
    await waitFor("every export delivered", async () => (store.outboxDepth("crm") === 0 ? true : undefined));
    await delivery.stop();
    expect(listRuns(store).map((r) => [r.kind, r.state, r.processed])).toEqual([["export", "complete", RECORDS]]);
    expect(received.size).toBe(RECORDS);
    expect(seen.deepest).toBeGreaterThanOrEqual(500);
    expect(seen.deepest).toBeLessThan(BOUND + 500);
    expect(logged.filter((m) => m.startsWith("run resumes")).length).toBeGreaterThanOrEqual(1);
  });

  it("counts a removed unique property's records as its done, not its index entries too", async () => {
    await stateOf1200Records();
    // email is unique: its 1,200 index entries are dropped first, then its values leave 1,200 records.
    const after = compiled(withoutDestinations().filter((o) => !["email", "example_emails", "no_email"].includes(String(o.id))));
    const { runs } = runsUnderBound(after.domain);
    const plan = await runs.start(after.definitions, () => true, false);
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-group group example_emails", "remove-group group no_email", "remove-property property email"]);
    await runs.idle();
    expect(listRuns(store).map((r) => [r.kind, r.state, r.processed, r.total])).toEqual([
      ["remove-group", "complete", RECORDS, RECORDS],
      ["remove-group", "complete", RECORDS, RECORDS],
      ["remove-property", "complete", RECORDS, RECORDS],
    ]);
  });

  it("keeps a removed source's total when its Run resumes part-way", async () => {
    const before = compiled(withoutDestinations());
    const first = new Runs({ store, domain: before.domain, schedule: () => undefined, connectorOf: () => undefined, logger: pino({ level: "silent" }) });
    await first.start(before.definitions, () => true, store.isEmpty());
    await applyBatch(store, before.domain, [user(1)], T);
    for (let from = 1; from <= 6000; from += 1000) await applyBatch(store, before.domain, Array.from({ length: 1000 }, (_, i) => purchase(from + i, { user_id: 1, amount: 1, state: "paid", sku: "A", created_at: "2026-10-30T00:00:00Z" })), T);
    // The purchases source taken out, with what reads it: its 6,000 rows go, 5,000 a chunk.
    const purchaseProperties = new Set(coreConfigObjects().filter((o) => o.class === "property" && o.sourceId === "purchases_table").map((o) => String(o.id)));
    const reads = (o: Obj) => JSON.stringify(o.rules ?? []).match(/"propertyId":"([^"]+)"/g)?.some((m) => purchaseProperties.has(m.slice(14, -1))) === true;
    const after = compiled(withoutDestinations().filter((o) => o.id !== "purchases_table" && !purchaseProperties.has(String(o.id)) && !(o.class === "group" && reads(o))));
    // Stepped as the pipeline would until the removal has done its first chunk, then stopped (a restart).
    const removed = () => listRuns(store).find((r) => r.kind === "remove-source");
    const once: Runs = new Runs({
      store,
      domain: after.domain,
      schedule: (work) =>
        void (async () => {
          while (await work.step()) {
            if ((removed()?.processed ?? 0) > 0) return once.stop();
          }
        })(),
      connectorOf: () => undefined,
      logger: pino({ level: "silent" }),
    });
    const plan = await once.start(after.definitions, () => true, false);
    const removal = plan.runs.findIndex((r) => r.spec.kind === "remove-source");
    expect(removal).toBeGreaterThanOrEqual(0);
    await vi.waitFor(() => expect(removed()?.processed).toBe(5000));
    expect(removed()?.total).toBe(6000);

    // Resumed (its chunks not run yet): 5,000 done of 6,000, not of the 1,000 rows left.
    const started: [string, number, number | null][] = [];
    const resumed = new Runs({ store, domain: after.domain, schedule: () => undefined, connectorOf: () => undefined, logger: pino({ level: "silent" }), events: { started: (run) => void started.push([run.kind, run.processed, run.total]) } });
    await resumed.start(after.definitions, () => true, false);
    await vi.waitFor(() => expect(started).toEqual([["remove-source", 5000, 6000]]));
    expect([removed()?.state, removed()?.processed, removed()?.total]).toEqual(["running", 5000, 6000]);
    resumed.stop();
    const again = runsUnderBound(after.domain);
    await again.runs.start(after.definitions, () => true, false);
    await again.runs.idle();
    expect(listRuns(store).filter((r) => r.kind === "remove-source").map((r) => [r.state, r.processed, r.total])).toEqual([["complete", 6000, 6000]]);
  });

  it("empties a reset destination's full outbox before its Run waits for the bound", async () => {
    await stateOf1200Records();
    const added = compiled(withCrm());
    const first = runsUnderBound(added.domain);
    await first.runs.start(added.definitions, () => true, false);
    await waitFor("the first chunk", async () => (store.outboxDepth("crm") === 500 ? true : undefined));
    first.runs.stop();

    // The destination's options change (a new endpoint): its outbox of 500, at its bound, is dropped,
    // and the new endpoint's exports are planned a chunk at a time again.
    const moved = compiled(withCrm({ path: "/v2" }));
    const second = runsUnderBound(moved.domain);
    const plan = await second.runs.start(moved.definitions, () => true, false);
    expect(plan.runs.map((r) => [r.spec.kind, r.spec.kind === "export" && r.spec.reset])).toEqual([["export", true]]);
    await waitFor("the reset Run's first chunk", async () => (listRuns(store).some((r) => r.state === "running" && r.processed === 500 && r.spec.kind === "export" && r.spec.reset) ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(store.outboxDepth("crm")).toBe(500);
    const { delivery, received } = delivering();
    delivery.start();
    await second.runs.idle();
    await waitFor("every export delivered", async () => (store.outboxDepth("crm") === 0 ? true : undefined));
    await delivery.stop();
    // Its done count is the records it planned (the outbox entries it dropped first are not records).
    expect(listRuns(store).map((r) => [r.kind, r.state, r.processed, r.total])).toEqual([
      ["export", "superseded", 500, RECORDS],
      ["export", "complete", RECORDS, RECORDS],
    ]);
    expect(received.size).toBe(RECORDS);
  });
});
