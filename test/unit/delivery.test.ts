// Delivery without I/O: a fake outbox and a scripted destination. Retries honour Retry-After and back
// off exponentially, a whole-batch rejection is split until the bad exports are alone, info skips,
// errors past maxAttempts become dead letters, the rate limit and concurrency hold, and a Retry-After
// too far for a timer does not make the loop spin. On fake timers: no test waits for real time.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DeliveryError, type DeliverableExport, type DestinationConnector, type ExportResult } from "../../connectors/types.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery, type DeliveryEntry, type DeliveryOptions, type DeliveryOutcome } from "../../streams/delivery.js";
import { exportOf } from "../helpers/exports.js";

const entry = (seq: number): DeliveryEntry => exportOf(seq);

function outbox(count: number, clock: () => number) {
  const entries = new Map<number, DeliveryEntry & { notBefore?: number }>(Array.from({ length: count }, (_, i) => [i + 1, entry(i + 1)]));
  const completed: DeliveryOutcome<DeliveryEntry>[] = [];
  const calls = { pending: 0 };
  return {
    entries,
    completed,
    calls,
    store: {
      pending: (limit: number, now: number, inFlight: ReadonlySet<number>) => {
        calls.pending += 1;
        return [...entries.values()].filter((e) => !inFlight.has(e.seq) && (e.notBefore ?? 0) <= now).slice(0, limit);
      },
      markSending: async (read: readonly DeliveryEntry[]) => read.filter((e) => entries.has(e.seq)),
      complete: async (outcomes: readonly DeliveryOutcome<DeliveryEntry>[]) => {
        for (const o of outcomes) {
          completed.push(o);
          if (o.status === "error" && o.retryAt !== undefined) entries.set(o.entry.seq, { ...o.entry, attempts: (o.entry.attempts ?? 0) + 1, notBefore: o.retryAt });
          else entries.delete(o.entry.seq);
        }
      },
      nextRetryAt: () => Math.min(...[...entries.values()].map((e) => e.notBefore ?? Infinity).filter((t) => t !== Infinity)) || undefined,
    },
    clock,
  };
}

const connector = (deliver: (batch: readonly DeliverableExport[]) => Promise<ExportResult[]>): DestinationConnector => ({
  destinationId: "d",
  deliver,
  ready: () => true,
  stop: async () => undefined,
});

async function run(count: number, deliver: (batch: readonly DeliverableExport[]) => Promise<ExportResult[]>, options: Partial<DeliveryOptions> = {}) {
  const box = outbox(count, Date.now);
  const delivery = new Delivery(connector(deliver), box.store, { completed: () => undefined, failed: (e) => { throw e; } }, {
    ...DEFAULT_DELIVERY_OPTIONS,
    baseBackoffMs: 10,
    random: () => 1,
    ...options,
  });
  delivery.start();
  for (let waited = 0; box.entries.size > 0 && waited < 8000; waited += 10) await vi.advanceTimersByTimeAsync(10);
  const stopped = delivery.stop();
  await vi.advanceTimersByTimeAsync(100);
  await stopped;
  return box;
}

describe("Delivery", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("bounds a batch by the UTF-8 bytes of the exports it sends, not their UTF-16 length, nor the outbox's bookkeeping", async () => {
    const batches: number[][] = [];
    const sizes: number[] = [];
    const box = outbox(6, Date.now);
    // 300 CJK characters: 300 UTF-16 units, 900 bytes; exports 1-3 also carry a baseline (base) of the same size, never sent.
    for (const [seq, e] of box.entries) box.entries.set(seq, { ...e, newRecordProperties: { id: seq, name: "漢".repeat(300) }, ...(seq <= 3 ? { base: { properties: { name: "字".repeat(300) }, groups: [] } } : {}) });
    const delivery = new Delivery(
      connector(async (batch) => {
        batches.push(batch.map((e) => e.seq));
        sizes.push(batch.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0));
        return batch.map((e) => ({ seq: e.seq, status: "ok" as const }));
      }),
      box.store,
      { completed: () => undefined, failed: (e) => { throw e; } },
      { ...DEFAULT_DELIVERY_OPTIONS, concurrency: 1, maxBatchBytes: 2500 },
    );
    delivery.start();
    for (let waited = 0; box.entries.size > 0 && waited < 8000; waited += 10) await vi.advanceTimersByTimeAsync(10);
    const stopped = delivery.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopped;
    // Each export is about 1,100 bytes as sent: two to a batch of at most 2,500 bytes (by length, about
    // 500 each, five went at once; with the baseline counted, one).
    expect(batches).toEqual([[1, 2], [3, 4], [5, 6]]);
    expect(sizes.every((n) => n <= 2500)).toBe(true);
  });

  it("delivers in batches of the configured size, oldest first", async () => {
    const batches: number[][] = [];
    await run(7, async (batch) => (batches.push(batch.map((e) => e.seq)), batch.map((e) => ({ seq: e.seq, status: "ok" }))), { batchSize: 3, concurrency: 1 });
    expect(batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it("gives the destination the documented export and none of the outbox's bookkeeping", async () => {
    const box = outbox(2, Date.now);
    for (const [seq, e] of box.entries) box.entries.set(seq, { ...e, base: { properties: { id: 0 }, groups: ["g"] }, sending: true } as DeliveryEntry);
    const seen: string[][] = [];
    let calls = 0;
    const delivery = new Delivery(
      connector(async (batch) => {
        calls += 1;
        seen.push(...batch.map((e) => Object.keys(e)));
        if (calls === 1) throw new DeliveryError("503", true);
        return batch.map((e) => ({ seq: e.seq, status: "ok" }));
      }),
      box.store,
      { completed: () => undefined, failed: () => undefined },
      { ...DEFAULT_DELIVERY_OPTIONS, baseBackoffMs: 10, random: () => 1, concurrency: 1 },
    );
    delivery.start();
    for (let waited = 0; box.entries.size > 0 && waited < 8000; waited += 10) await vi.advanceTimersByTimeAsync(10);
    const stopped = delivery.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopped;
    // The second attempt's entries carry `attempts` in the outbox; the destination sees the same ten keys.
    const documented = ["seq", "destinationId", "recordId", "oldRecordProperties", "newRecordProperties", "oldGroups", "newGroups", "toDelete", "updateOnly", "commitTime"];
    expect(calls).toBe(2);
    expect(seen).toEqual([documented, documented, documented, documented]);
    expect(box.completed.filter((o) => o.status === "ok").map((o) => [o.entry.seq, o.entry.attempts, (o.entry as { base?: unknown }).base])).toEqual([
      [1, 1, { properties: { id: 0 }, groups: ["g"] }],
      [2, 1, { properties: { id: 0 }, groups: ["g"] }],
    ]);
  });

  it("splits a batch rejected as a whole until the bad export is alone, and dead-letters only it", async () => {
    const calls: number[][] = [];
    const box = await run(
      8,
      async (batch) => {
        calls.push(batch.map((e) => e.seq));
        if (batch.some((e) => e.seq === 6)) throw new DeliveryError("400: record 6 is invalid", false);
        return batch.map((e) => ({ seq: e.seq, status: "ok" }));
      },
      { batchSize: 8, concurrency: 1 },
    );
    expect(calls).toEqual([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 8], [5, 6], [5], [6], [7, 8]]);
    expect(box.completed.filter((o) => o.status === "error").map((o) => [o.entry.seq, o.message, o.retryAt])).toEqual([[6, "400: record 6 is invalid", undefined]]);
    expect(box.completed.filter((o) => o.status === "ok").map((o) => o.entry.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 7, 8]);
  });

  it("retries a retryable failure no sooner than Retry-After, then succeeds", async () => {
    const times: number[] = [];
    const box = await run(1, async (batch) => {
      times.push(Date.now());
      if (times.length === 1) throw new DeliveryError("429", true, 300);
      return batch.map((e) => ({ seq: e.seq, status: "ok" }));
    });
    expect(times).toHaveLength(2);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(300);
    expect(box.completed.map((o) => o.status)).toEqual(["error", "ok"]);
  });

  it("backs off exponentially and dead-letters after maxAttempts", async () => {
    const times: number[] = [];
    const box = await run(
      1,
      async (batch) => {
        times.push(Date.now());
        return batch.map((e) => ({ seq: e.seq, status: "error", message: "temporarily broken" }));
      },
      { maxAttempts: 4, baseBackoffMs: 40 },
    );
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    expect(gaps[0]).toBeGreaterThanOrEqual(40);
    expect(gaps[1]).toBeGreaterThanOrEqual(80);
    expect(gaps[2]).toBeGreaterThanOrEqual(160);
    expect(box.completed.at(-1)).toMatchObject({ status: "error", message: "temporarily broken" });
    expect(box.completed.at(-1)?.retryAt).toBeUndefined();
  });

  it("keeps retrying past maxAttempts while the destination names a problem of its own, and delivers once it is fixed", async () => {
    let problem: string | null = "cannot write /data/out.jsonl: ENOSPC";
    let calls = 0;
    const box = outbox(1, Date.now);
    const failing: DestinationConnector = {
      ...connector(async (batch) => {
        calls += 1;
        if (calls === 6) problem = null;
        if (problem) throw new DeliveryError(problem, true);
        return batch.map((e) => ({ seq: e.seq, status: "ok" as const }));
      }),
      problem: () => problem,
    };
    const delivery = new Delivery(failing, box.store, { completed: () => undefined, failed: (e) => { throw e; } }, { ...DEFAULT_DELIVERY_OPTIONS, baseBackoffMs: 10, maxBackoffMs: 50, random: () => 1, maxAttempts: 3 });
    delivery.start();
    for (let waited = 0; box.entries.size > 0 && waited < 8000; waited += 10) await vi.advanceTimersByTimeAsync(10);
    const stopped = delivery.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopped;
    // Before, the third attempt made it a dead letter.
    expect(calls).toBe(6);
    expect(box.completed.slice(0, 5).every((o) => o.status === "error" && o.retryAt !== undefined)).toBe(true);
    expect(box.completed.at(-1)).toMatchObject({ status: "ok" });
  });

  it("removes info results without retrying them", async () => {
    let calls = 0;
    const box = await run(2, async (batch) => (calls++, batch.map((e) => ({ seq: e.seq, status: e.seq === 1 ? "info" : "ok", message: "not there" }))));
    expect(calls).toBe(1);
    expect(box.completed.map((o) => o.status)).toEqual(["info", "ok"]);
  });

  it("takes a status outside ok, info and error as no answer: retried as possibly landed, never completed with it", async () => {
    let calls = 0;
    const box = await run(2, async (batch) => (calls++, batch.map((e) => ({ seq: e.seq, status: (calls === 1 && e.seq === 1 ? "success" : "ok") as ExportResult["status"] }))));
    expect(calls).toBe(2);
    expect(box.completed.map((o) => [o.entry.seq, o.status, o.message, o.mayHaveLanded, o.retryAt !== undefined])).toEqual([
      [1, "error", 'the destination returned an unknown status "success" for this export', true, true],
      [2, "ok", undefined, undefined, false],
      [1, "ok", undefined, undefined, false],
    ]);
  });

  it("keeps to the rate limit", async () => {
    const started = Date.now();
    await run(30, async (batch) => batch.map((e) => ({ seq: e.seq, status: "ok" })), { ratePerSecond: 20, batchSize: 5, concurrency: 1 });
    // 20 tokens at the start, then 10 more at 20 per second: at least half a second.
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
  });

  it("keeps at most `concurrency` batches in flight", async () => {
    let active = 0;
    let peak = 0;
    await run(
      20,
      async (batch) => {
        active += 1;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 20));
        active -= 1;
        return batch.map((e) => ({ seq: e.seq, status: "ok" }));
      },
      { batchSize: 2, concurrency: 3 },
    );
    expect(peak).toBe(3);
  });

  it("waits out a Retry-After longer than a timer can hold without spinning", async () => {
    const month = 30 * 24 * 3600 * 1000;
    const box = outbox(1, Date.now);
    let attempts = 0;
    const delivery = new Delivery(
      connector(async () => {
        attempts += 1;
        throw new DeliveryError("429", true, month);
      }),
      box.store,
      { completed: () => undefined, failed: (e) => { throw e; } },
      { ...DEFAULT_DELIVERY_OPTIONS, random: () => 1, maxBackoffMs: month },
    );
    delivery.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(attempts).toBe(1);
    const before = box.calls.pending;
    await vi.advanceTimersByTimeAsync(2000);
    // A spinning loop would look at the outbox every millisecond; a waiting one not at all.
    expect(box.calls.pending - before).toBeLessThanOrEqual(1);
    expect(attempts).toBe(1);
    const stopped = delivery.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopped;
  });
});
