// The outbox while an export is being sent: newer changes of the same record queue behind it and are
// planned against what the destination will hold, so a revert, or a delete right after a create,
// still ends with the destination exactly at the record's state.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DeliveryError, type DeliverableExport, type DestinationConnector, type ExportResult } from "../../../connectors/types.js";
import { Store, type OutboxEntry } from "../../../state/store.js";
import { Delivery, DEFAULT_DELIVERY_OPTIONS } from "../../../streams/delivery.js";
import { change, coreDomain } from "../../helpers/core.js";
import type { Change } from "../../../core/change.js";
import { waitFor } from "../../helpers/daemon.js";
import { applyBatch } from "../../../streams/batch.js";
import { pino } from "pino";
import { DeliveryLog } from "../../../daemon/problems.js";

const domain = coreDomain();

/** A destination that holds the first request until released, and applies exports like an upsert store. */
function slowDestination() {
  const remote = new Map<string, Record<string, unknown>>();
  let release: () => void = () => undefined;
  let gate: Promise<void> | undefined = new Promise<void>((r) => (release = r));
  let started: () => void = () => undefined;
  const firstStarted = new Promise<void>((r) => (started = r));
  const connector: DestinationConnector = {
    destinationId: "crm",
    async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
      if (gate) {
        started();
        await gate;
        gate = undefined;
      }
      for (const e of batch) {
        if (e.toDelete) remote.delete(e.recordId);
        else remote.set(e.recordId, e.newRecordProperties);
      }
      return batch.map((e) => ({ seq: e.seq, status: "ok" }));
    },
    ready: () => true,
    stop: async () => undefined,
  };
  return { connector, remote, firstStarted, release: () => release() };
}

// Every test on a state of its own.
let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outbox-"));
  store = Store.open(dir);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("outbox with an export in flight", () => {

  async function scenario(afterFirstSent: () => Promise<void>) {
    const slow = slowDestination();
    const delivery = new Delivery<OutboxEntry>(slow.connector, store.outboxFor("crm"), { completed: () => undefined, failed: () => undefined }, DEFAULT_DELIVERY_OPTIONS);
    delivery.start();
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    delivery.wake();
    await slow.firstStarted;
    await afterFirstSent();
    delivery.wake();
    slow.release();
    await waitFor("delivered", async () => (store.outboxDepth("crm") === 0 && delivery.idle() ? true : undefined));
    await delivery.stop();
    return slow.remote;
  }

  it("a record that changes and changes back while its export is sent ends at its state", async () => {
    const remote = await scenario(async () => {
      await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "b@example.com" })], Date.now());
      await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "a@example.com" })], Date.now());
    });
    expect(remote.get("1")).toMatchObject({ email: "a@example.com" });
    expect(store.remoteOf("crm", "1")?.properties).toMatchObject({ email: "a@example.com" });
  });

  // The change back drops the export queued behind the one being sent: the record's index must then
  // name the one being sent again, or the delete is planned against nothing (the destination holds
  // nothing yet) and never sent.
  it("a record that changes, changes back and is deleted while its creation is sent is deleted remotely too", async () => {
    const remote = await scenario(async () => {
      await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "b@example.com" })], Date.now());
      await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "a@example.com" })], Date.now());
      expect(store.queuedExportOf("crm", "1")).toMatchObject({ sending: true, newRecordProperties: { email: "a@example.com" } });
      await applyBatch(store, domain, [change("users_table", "delete", "1", null)], Date.now());
    });
    expect(remote.has("1")).toBe(false);
    expect(store.remoteOf("crm", "1")).toBeUndefined();
  });

  it("a record deleted while its creation is sent is deleted remotely too", async () => {
    const remote = await scenario(async () => {
      await applyBatch(store, domain, [change("users_table", "delete", "1", null)], Date.now());
    });
    expect(remote.has("1")).toBe(false);
    expect(store.remoteOf("crm", "1")).toBeUndefined();
  });
});

describe("outbox read before a batch supersedes it", () => {

  // The delivery loop reads what is pending, then marks it in a transaction of its own; a batch that
  // commits in between may replace or drop what was read. What it dropped must not be sent.
  it("an export dropped between its read and its mark is not sent, and the destination ends at the record's state", async () => {
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" }), change("users_table", "insert", "2", { id: 2, email: "b@example.com" })], Date.now());
    // The first mark loses the race: the record is deleted (its creation never sent) first.
    const { delivered, remote, marks } = await deliverRacing([change("users_table", "delete", "1", null)]);
    expect(marks).toBe(1);
    expect(delivered.map((e) => e.recordId)).toEqual(["2"]);
    expect([...remote.keys()]).toEqual(["2"]);
    expect(store.remoteOf("crm", "1")).toBeUndefined();
    expect(store.remoteOf("crm", "2")?.properties).toMatchObject({ email: "b@example.com" });
  });

  // The batch replaces the export read in place (same seq, never attempted): the mark must see that
  // it is not what was read, or the older content would leave while the state records the newer one.
  it("an export replaced in place between its read and its mark is not sent; the newer one is, and the destination ends at the record's state", async () => {
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    const { delivered, remote, marks } = await deliverRacing([change("users_table", "update", "1", { id: 1, email: "a2@example.com" })]);
    expect(marks).toBe(2);
    expect(delivered.map((e) => [e.seq, e.newRecordProperties.email])).toEqual([[1, "a2@example.com"]]);
    expect(remote.get("1")).toMatchObject({ email: "a2@example.com" });
    expect(store.remoteOf("crm", "1")?.properties).toMatchObject({ email: "a2@example.com" });
  });
});

/**
 * Delivers the outbox of "crm" to a recording destination until it is empty, applying `first` as a
 * batch of its own between the delivery loop's first read and its first mark.
 */
async function deliverRacing(first: Change[]) {
  const outbox = store.outboxFor("crm");
  let marks = 0;
  const racing = {
    ...outbox,
    markSending: async (entries: readonly OutboxEntry[]) => {
      if (marks++ === 0) await applyBatch(store, domain, first, Date.now());
      return outbox.markSending(entries);
    },
  };
  const { delivered, remote } = await deliverAll(racing);
  return { delivered, remote, marks };
}

/** Delivers an outbox of "crm" to a recording destination until it is empty. */
async function deliverAll(outbox: ReturnType<Store["outboxFor"]>, destinationId = "crm") {
  const recorded = recording();
  const delivery = new Delivery<OutboxEntry>(recorded.connector, outbox, { completed: () => undefined, failed: () => undefined }, DEFAULT_DELIVERY_OPTIONS);
  delivery.start();
  await waitFor("delivered", async () => (store.outboxDepth(destinationId) === 0 && delivery.idle() ? true : undefined));
  await delivery.stop();
  return recorded;
}

/** A destination that applies what it is sent at once, like an upsert store, and records each export. */
function recording() {
  const delivered: DeliverableExport[] = [];
  const remote = new Map<string, Record<string, unknown>>();
  const connector: DestinationConnector = {
    destinationId: "crm",
    async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
      for (const e of batch) {
        delivered.push(e);
        if (e.toDelete) remote.delete(e.recordId);
        else remote.set(e.recordId, e.newRecordProperties);
      }
      return batch.map((e) => ({ seq: e.seq, status: "ok" }));
    },
    ready: () => true,
    stop: async () => undefined,
  };
  return { connector, delivered, remote };
}

describe("outbox with a backlog", () => {

  // A newer export of a record whose export was never attempted replaces it under its seq: the record
  // keeps its place, so one changing faster than a backlog drains is not sent to the back each time.
  it("a record that changes again keeps its place in the queue, with its newest state", async () => {
    await applyBatch(store, domain, [1, 2, 3].map((id) => change("users_table", "insert", String(id), { id, email: `u${id}@example.com` })), Date.now());
    const later = 1_700_000_009_000;
    for (const email of ["x@example.com", "y@example.com", "z@example.com"]) await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email }, later)], Date.now());
    expect(store.outboxOf("crm").map((e) => [e.seq, e.recordId, e.newRecordProperties.email, e.rev])).toEqual([
      [1, "1", "z@example.com", 3],
      [2, "2", "u2@example.com", undefined],
      [3, "3", "u3@example.com", undefined],
    ]);
    // It carries the newest change (the end-to-end latency counts from it), and has waited since the
    // first (the status's oldest pending age counts from it).
    expect(store.oldestExport("crm")).toMatchObject({ seq: 1, commitTime: later, waitingSince: 1_700_000_000_000 });
    // Planned against what the destination holds (nothing): a creation with the newest values.
    expect(store.queuedExportOf("crm", "1")).toMatchObject({ oldRecordProperties: {}, base: null, toDelete: false });
    const { delivered } = await deliverAll(store.outboxFor("crm"));
    expect(delivered.map((e) => [e.seq, e.recordId, e.newRecordProperties.email])).toEqual([
      [1, "1", "z@example.com"],
      [2, "2", "u2@example.com"],
      [3, "3", "u3@example.com"],
    ]);
  });

  // A worker sends an export before the mark that hands it over reaches its changelog: the
  // partition's next owner may not know it left, so its seq never carries another content.
  it("in a worker's partition (a state whose writes go to a changelog), a newer export takes a new seq", async () => {
    const partitionDir = mkdtempSync(join(tmpdir(), "outbox-partition-"));
    const partition = Store.open(partitionDir, { capture: () => undefined });
    try {
      await applyBatch(partition, domain, [1, 2].map((id) => change("users_table", "insert", String(id), { id, email: `u${id}@example.com` })), Date.now());
      await applyBatch(partition, domain, [change("users_table", "update", "1", { id: 1, email: "x@example.com" })], Date.now());
      expect(partition.outboxOf("crm").map((e) => [e.seq, e.recordId, e.newRecordProperties.email, e.rev])).toEqual([
        [2, "2", "u2@example.com", undefined],
        [3, "1", "x@example.com", undefined],
      ]);
    } finally {
      await partition.close();
      rmSync(partitionDir, { recursive: true, force: true });
    }
  });

  it("an unsent creation, then the record deleted: nothing is queued", async () => {
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "b@example.com" })], Date.now());
    await applyBatch(store, domain, [change("users_table", "delete", "1", null)], Date.now());
    expect(store.queuedExportOf("crm", "1")).toBeUndefined();
    expect(store.outboxDepth("crm")).toBe(0);
  });

  // Its seq went out with a request (a webhook's Idempotency-Key is made of seqs): a newer export
  // takes a seq of its own, at the back.
  it("an export rejected once is replaced under a new seq, not in place", async () => {
    await applyBatch(store, domain, [1, 2].map((id) => change("users_table", "insert", String(id), { id, email: `u${id}@example.com` })), Date.now());
    const outbox = store.outboxFor("crm");
    const [first] = await outbox.markSending(outbox.pending(1, Date.now(), new Set(), new Set()));
    if (!first) throw new Error("nothing to send");
    await outbox.complete([{ entry: first, status: "error", message: "rejected", retryAt: Date.now() + 60_000 }]);
    expect(store.queuedExportOf("crm", "1")).toMatchObject({ seq: 1, attempts: 1, sending: false });
    await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "x@example.com" })], Date.now());
    expect(store.outboxOf("crm").map((e) => [e.seq, e.recordId, e.newRecordProperties.email])).toEqual([
      [2, "2", "u2@example.com"],
      [3, "1", "x@example.com"],
    ]);
  });
});

// The backpressure compares each destination's depth with the bound and half of it. LMDB's entry
// count of the outbox bounds every depth at once: below the floor asked for, nothing is counted; at or
// above it, each destination's exports are. Either way a comparison with the floor or above reads the
// same as with the exact depths.
describe("outbox depths for the backpressure", () => {
  it("are LMDB's entry count below the floor, exact at or above it, and compare with the floor and above as the exact depths do", async () => {
    await applyBatch(store, domain, [1, 2, 3, 4, 5].map((id) => change("users_table", "insert", String(id), { id, email: `u${id}@example.com` })), Date.now());
    const exact = [store.outboxDepth("crm"), store.outboxDepth("other")];
    expect(exact).toEqual([5, 0]);
    // Five exports and msgpack's shared structures entry.
    expect(store.outboxDepthsFrom(["crm", "other"], 7)).toEqual([6, 6]);
    expect(store.outboxDepthsFrom(["crm", "other"], 6)).toEqual([5, 0]);
    expect(store.outboxDepthsFrom(["crm", "other"], 6, false)).toBeUndefined();
    expect(store.outboxDepthsFrom(["crm", "other"], 7, false)).toEqual([6, 6]);
    for (let floor = 1; floor <= 12; floor++) {
      const given = store.outboxDepthsFrom(["crm", "other"], floor);
      for (const threshold of [floor, floor + 1, 2 * floor]) {
        expect(given.map((n) => n >= threshold), `floor ${floor}, compared with ${threshold}`).toEqual(exact.map((n) => n >= threshold));
      }
    }
    // Delivered, the outbox holds nothing: below any floor.
    await deliverAll(store.outboxFor("crm"));
    expect(store.outboxDepthsFrom(["crm"], 2)).toEqual([1]);
    expect(store.outboxDepthsFrom(["crm"], 1)).toEqual([0]);
  });

  it("are exact whichever destinations hold exports, asked for or not, in any order, walking only all but one of them", async () => {
    const plan = (d: string, r: string) => ({ destinationId: d, recordId: r, oldRecordProperties: {}, newRecordProperties: { email: r }, oldGroups: [], newGroups: [], toDelete: false, updateOnly: false, commitTime: 1 });
    const queue = (d: string, ids: string[]) => store.transact((tx) => ids.forEach((r) => tx.putExport(d, r, plan(d, r), null)));
    const walked = (ids: string[]) => ids.map((d) => store.outboxOf(d, 1_000_000).length);
    // Which destinations' exports are walked (counted one by one), from the outbox's own count.
    const outbox = (store as unknown as { outbox: { getCount: (range: { start: unknown[] }) => number } }).outbox;
    const counts = vi.spyOn(outbox, "getCount");
    const depths = (ids: string[]) => {
      counts.mockClear();
      const given = store.outboxDepths(ids);
      return { given, walkedFor: counts.mock.calls.map(([range]) => range.start[0]).sort() };
    };
    expect(depths(["crm", "other"])).toEqual({ given: [0, 0], walkedFor: [] });
    await queue("crm", ["1", "2", "3"]);
    // One destination holds exports: the entry count less the structures entry, nothing walked.
    expect(depths(["crm", "other"])).toEqual({ given: [3, 0], walkedFor: [] });
    expect(depths(["other", "crm"])).toEqual({ given: [0, 3], walkedFor: [] });
    expect(store.outboxDepth("crm")).toBe(3);
    await queue("other", ["1", "2"]);
    await queue("b-first", ["9"]); // sorts before the others
    // Three hold exports: two walked, the last in key order is the rest of the entry count.
    for (const ids of [["crm", "other", "b-first"], ["b-first", "other", "crm"], ["other", "crm", "b-first", "crm"]]) {
      expect(depths(ids), ids.join(",")).toEqual({ given: walked(ids), walkedFor: ["b-first", "crm"] });
    }
    expect(walked(["crm", "other", "b-first"])).toEqual([3, 2, 1]);
    // A destination holding exports that is not asked for (one the config dropped): each one asked is walked.
    expect(depths(["crm", "other"])).toEqual({ given: [3, 2], walkedFor: ["crm", "other"] });
    expect(depths(["other"])).toEqual({ given: [2], walkedFor: ["other"] });
    expect(store.outboxDepth("b-first")).toBe(1);
    expect(store.outboxDepthsFrom(["crm", "other", "b-first"], 2)).toEqual([3, 2, 1]);
    expect(store.namedOutboxDepths(["other", "b-first"])).toEqual([["other", 2], ["b-first", 1]]);
    // Two of them delivered: the one left is the entry count less the structures entry again.
    await deliverAll(store.outboxFor("b-first"), "b-first");
    await deliverAll(store.outboxFor("other"), "other");
    expect(depths(["crm", "other", "b-first"])).toEqual({ given: [3, 0, 0], walkedFor: [] });
    await deliverAll(store.outboxFor("crm"));
    expect(depths(["crm", "other", "b-first"])).toEqual({ given: [0, 0, 0], walkedFor: [] });
    expect(store.outboxDepths([])).toEqual([]);
    counts.mockRestore();
  });
});

describe("outbox after a send whose outcome is unknown", () => {

  /** A destination that applies what it is sent, like an upsert store, and records each request. */
  function applying(fail: (call: number) => DeliveryError | undefined, hold?: Promise<void>) {
    const remote = new Map<string, Record<string, unknown>>();
    const requests: string[][] = [];
    let started: () => void = () => undefined;
    const firstStarted = new Promise<void>((r) => (started = r));
    const connector: DestinationConnector = {
      destinationId: "crm",
      async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
        requests.push(batch.map((e) => `${e.recordId}:${e.toDelete ? "delete" : String(e.newRecordProperties.email)}`));
        const call = requests.length;
        if (call === 1) {
          started();
          await hold;
        }
        for (const e of batch) {
          if (e.toDelete) remote.delete(e.recordId);
          else remote.set(e.recordId, e.newRecordProperties);
        }
        // Applied, and then the answer is lost (a timeout, a connection reset).
        const error = fail(call);
        if (error) throw error;
        return batch.map((e) => ({ seq: e.seq, status: "ok" }));
      },
      ready: () => true,
      stop: async () => undefined,
    };
    return { connector, remote, requests, firstStarted };
  }

  it("a failed attempt that landed all the same, then the record deleted: the destination ends without it", async () => {
    const dest = applying((call) => (call === 1 ? new DeliveryError("timed out after the request was sent", true) : undefined));
    const delivery = new Delivery<OutboxEntry>(dest.connector, store.outboxFor("crm"), { completed: () => undefined, failed: () => undefined }, { ...DEFAULT_DELIVERY_OPTIONS, baseBackoffMs: 300, random: () => 1 });
    delivery.start();
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    delivery.wake();
    await waitFor("the failed attempt recorded", async () => (store.exportResultOf("crm", "1")?.status === "retry" ? true : undefined));
    // Deleted while the create waits for its retry: the delete follows it, planned as if it landed.
    await applyBatch(store, domain, [change("users_table", "delete", "1", null)], Date.now());
    delivery.wake();
    await waitFor("delivered", async () => (store.outboxDepth("crm") === 0 && delivery.idle() ? true : undefined));
    await delivery.stop();
    expect(dest.requests).toEqual([["1:a@example.com"], ["1:a@example.com"], ["1:delete"]]);
    expect(dest.remote.has("1")).toBe(false);
    expect(store.remoteOf("crm", "1")).toBeUndefined();
  });

  it("an export the destination rejected in its answer did not land: a newer one replaces it", async () => {
    const remote = new Map<string, Record<string, unknown>>();
    const requests: string[][] = [];
    const connector: DestinationConnector = {
      destinationId: "crm",
      async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
        requests.push(batch.map((e) => `${e.recordId}:${String(e.newRecordProperties.email)}`));
        // The first answer rejects the record (a value the destination refuses); later ones apply.
        if (requests.length === 1) return batch.map((e) => ({ seq: e.seq, status: "error", message: "invalid email" }));
        for (const e of batch) remote.set(e.recordId, e.newRecordProperties);
        return batch.map((e) => ({ seq: e.seq, status: "ok" }));
      },
      ready: () => true,
      stop: async () => undefined,
    };
    const delivery = new Delivery<OutboxEntry>(connector, store.outboxFor("crm"), { completed: () => undefined, failed: () => undefined }, { ...DEFAULT_DELIVERY_OPTIONS, baseBackoffMs: 60_000, random: () => 1 });
    delivery.start();
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    delivery.wake();
    await waitFor("the rejection recorded", async () => (store.exportResultOf("crm", "1")?.status === "retry" ? true : undefined));
    // The source corrects the value: the new export goes out now, not after the rejected one's retries.
    await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "b@example.com" })], Date.now());
    delivery.wake();
    await waitFor("delivered", async () => (store.outboxDepth("crm") === 0 && delivery.idle() ? true : undefined));
    await delivery.stop();
    expect(requests).toEqual([["1:a@example.com"], ["1:b@example.com"]]);
    expect(remote.get("1")).toMatchObject({ email: "b@example.com" });
  });

  it("a send of the config before a reload that outlives its loop's stop is neither sent again nor overtaken", async () => {
    let release: () => void = () => undefined;
    const dest = applying(() => undefined, new Promise<void>((r) => (release = r)));
    const inFlight = { seqs: new Set<number>(), records: new Set<string>() };
    const events = { completed: () => undefined, failed: () => undefined };
    const before = new Delivery<OutboxEntry>(dest.connector, store.outboxFor("crm"), events, DEFAULT_DELIVERY_OPTIONS, inFlight);
    before.start();
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    before.wake();
    await dest.firstStarted;
    // The reload: the old loop stops with its send still unanswered, the record changes, a new loop starts.
    await before.stop(50);
    await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: "b@example.com" })], Date.now());
    const after = new Delivery<OutboxEntry>(dest.connector, store.outboxFor("crm"), events, DEFAULT_DELIVERY_OPTIONS, inFlight);
    after.start();
    after.wake();
    await new Promise((r) => setTimeout(r, 300));
    expect(dest.requests).toEqual([["1:a@example.com"]]);
    release();
    await waitFor("delivered", async () => (store.outboxDepth("crm") === 0 && after.idle() && inFlight.seqs.size === 0 ? true : undefined));
    await after.stop();
    expect(dest.requests).toEqual([["1:a@example.com"], ["1:b@example.com"]]);
    expect(dest.remote.get("1")).toMatchObject({ email: "b@example.com" });
    expect(store.remoteOf("crm", "1")?.properties).toMatchObject({ email: "b@example.com" });
  });
});

// The log line of a dead-lettered export names the dead letter's own seq (what dead-letters, the API,
// /exports/retry {seqs} and DELETE /dead-letters/{seq} take), not only its export's outbox seq.
describe("an export that becomes a dead letter", () => {
  it("is logged with its dead letter's seq, beside its export's seq", async () => {
    // Two letters of a source first: the dead letter's seq is then another number than the export's.
    await store.transact((tx) => {
      for (let i = 0; i < 2; i += 1) tx.deadLetter({ kind: "change", sourceId: "users_table", reason: "set aside by the test", change: change("users_table", "insert", "9", { id: 9 }) });
    });
    await applyBatch(store, domain, [change("users_table", "insert", "1", { id: 1, email: "a@example.com" })], Date.now());
    const lines: Record<string, unknown>[] = [];
    const log = new DeliveryLog(pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
    const rejecting: DestinationConnector = {
      destinationId: "crm",
      deliver: async () => {
        throw new DeliveryError("400: no such list", false);
      },
      ready: () => true,
      stop: async () => undefined,
    };
    const delivery = new Delivery<OutboxEntry>(rejecting, store.outboxFor("crm"), { completed: (outcomes, size) => log.delivered(outcomes, size), failed: () => undefined }, { ...DEFAULT_DELIVERY_OPTIONS, maxAttempts: 1 });
    delivery.start();
    await waitFor("dead-lettered", async () => (store.exportDeadLetters().length === 1 ? true : undefined));
    await delivery.stop();
    const [letter] = store.exportDeadLetters();
    expect(letter?.seq).toBe(3);
    expect(lines.filter((l) => l.level === 50)).toEqual([
      expect.objectContaining({
        msg: "export dead-lettered (grouparoo-stream dead-letters lists it by its deadLetterSeq; retry-exports re-queues it)",
        recordId: "1",
        deadLetterSeq: 3,
        exportSeq: letter?.entry.seq,
        reason: "400: no such list",
      }),
    ]);
    expect(letter?.entry.seq).not.toBe(3);
  });
});
