// The pipeline without I/O, on fake timers: batches bounded by size (group commit: what arrived
// during a commit is the next batch at once), work run one unit at a time in order, positions
// reported after commit, sources paused above the high-water mark and resumed below the low-water
// mark, one timer armed for the earliest time-index boundary, and Runs interleaved with batches.
import { Subject } from "rxjs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { emptyBatchResult, type BatchResult } from "../../core/apply.js";
import type { Change } from "../../core/change.js";
import { Backpressure } from "../../streams/backpressure.js";
import { Pipeline, type ChunkedWork, type CommittedBatch, type CoreOperations } from "../../streams/pipeline.js";

const empty = (): BatchResult => emptyBatchResult();
const change = (i: number): Change => ({
  sourceId: "s",
  op: "insert",
  key: String(i),
  before: null,
  after: { id: i },
  position: { stream: i % 2 ? "odd" : "even", position: String(i) },
  commitTime: 0,
});

function harness(ops: Partial<CoreOperations>, options: { maxBatchSize?: number; maxBatchDelayMs?: number; highWaterMark?: number; lowWaterMark?: number } = {}) {
  const source = new Subject<Change>();
  const committed: CommittedBatch[] = [];
  const pressure: boolean[] = [];
  const marks = { highWaterMark: options.highWaterMark ?? 1000, lowWaterMark: options.lowWaterMark ?? 100 };
  const backpressure = new Backpressure({ ...marks, outboxBound: 100 }, { changed: (_reason, _full, paused) => pressure.push(paused) });
  const pipeline = new Pipeline(
    source,
    { applyChanges: async () => empty(), sweep: async () => undefined, nextBoundary: () => undefined, ...ops },
    { committed: (b) => committed.push(b), failed: () => undefined },
    backpressure,
    { maxBatchSize: options.maxBatchSize ?? 10, maxBatchDelayMs: options.maxBatchDelayMs ?? 5, ...marks, clock: () => Date.now() },
  );
  return { source, committed, pressure, pipeline, done: pipeline.run() };
}

/** Lets promise callbacks run (fake timers do not advance them by themselves). */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe("Pipeline", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("cuts batches by size, applies them in order and reports each stream's last position", async () => {
    const sizes: number[] = [];
    const h = harness({ applyChanges: async (changes) => (sizes.push(changes.length), empty()) }, { maxBatchSize: 10 });
    for (let i = 0; i < 25; i += 1) h.source.next(change(i));
    h.source.complete();
    h.pipeline.drain();
    await h.done;
    expect(sizes).toEqual([10, 10, 5]);
    expect(h.committed.map((b) => Object.fromEntries(b.positions))).toEqual([
      { even: "8", odd: "9" },
      { even: "18", odd: "19" },
      { even: "24", odd: "23" },
    ]);
  });

  it("makes what arrived while a batch committed the next batch at once, without waiting for the delay", async () => {
    const sizes: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // A delay the fake clock never reaches: only the group-commit cut can form the later batches.
    const h = harness({ applyChanges: async (changes) => (sizes.push(changes.length), await gate, empty()) }, { maxBatchSize: 10, maxBatchDelayMs: 600_000 });
    for (let i = 0; i < 23; i += 1) h.source.next(change(i));
    expect(sizes).toEqual([10]);
    release();
    await settle();
    expect(sizes).toEqual([10, 10, 3]);
    expect(h.committed.map((b) => b.changes)).toEqual([10, 10, 3]);
    h.source.complete();
    h.pipeline.drain();
    await h.done;
  });

  it("waits at most the batch delay for company when the runner is idle", async () => {
    const sizes: number[] = [];
    const h = harness({ applyChanges: async (changes) => (sizes.push(changes.length), empty()) }, { maxBatchSize: 10, maxBatchDelayMs: 5 });
    h.source.next(change(1));
    h.source.next(change(2));
    await vi.advanceTimersByTimeAsync(4);
    expect(sizes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sizes).toEqual([2]);
    h.source.complete();
    h.pipeline.drain();
    await h.done;
  });

  it("pauses the sources above the high-water mark and resumes them below the low-water mark", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const h = harness({ applyChanges: async () => (await gate, empty()) }, { maxBatchSize: 10, highWaterMark: 30, lowWaterMark: 10 });
    for (let i = 0; i < 29; i += 1) h.source.next(change(i));
    expect(h.pressure).toEqual([]);
    h.source.next(change(29));
    expect(h.pressure).toEqual([true]);
    release();
    h.source.complete();
    h.pipeline.drain();
    await h.done;
    expect(h.pressure).toEqual([true, false]);
  });

  it("arms one timer for the earliest boundary and sweeps exactly when it comes", async () => {
    const start = Date.now();
    const sweeps: number[] = [];
    let boundary: number | undefined = start + 40;
    const h = harness({
      nextBoundary: () => boundary,
      sweep: async (now) => {
        sweeps.push(now);
        boundary = undefined;
        return empty();
      },
    });
    await vi.advanceTimersByTimeAsync(39);
    expect(sweeps).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sweeps).toEqual([start + 40]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sweeps).toHaveLength(1);
    expect(h.committed.map((b) => b.kind)).toEqual(["sweep"]);
    h.source.complete();
    h.pipeline.drain();
    await h.done;
  });

  it("applies changes that arrive during a long Run between its chunks, not after it", async () => {
    const order: string[] = [];
    const h = harness({ applyChanges: async (changes) => (order.push(`batch ${changes.length}`), empty()) });
    let chunk = 0;
    const run: ChunkedWork = {
      step: async () => {
        chunk += 1;
        order.push(`chunk ${chunk}`);
        await new Promise((r) => setTimeout(r, 5));
        return chunk < 40;
      },
    };
    h.pipeline.schedule(run);
    await vi.advanceTimersByTimeAsync(30);
    h.source.next(change(1));
    await vi.advanceTimersByTimeAsync(400);
    // The batch ran within a few chunks of its change (about the 7th), long before the 40th.
    expect(order.indexOf("batch 1")).toBeGreaterThan(0);
    expect(order.indexOf("batch 1")).toBeLessThan(order.indexOf("chunk 10"));
    expect(order.filter((o) => o.startsWith("chunk"))).toHaveLength(40);
    h.source.complete();
    h.pipeline.drain();
    await h.done;
  });

  it("runs a Run's chunks between batches until it is done", async () => {
    const order: string[] = [];
    const h = harness({ applyChanges: async (changes) => (order.push(`batch ${changes.length}`), empty()) });
    let steps = 0;
    h.pipeline.schedule({ step: async () => (order.push(`run step ${++steps}`), steps < 2) });
    await settle();
    h.source.next(change(1));
    h.source.complete();
    h.pipeline.drain();
    await h.done;
    expect(order).toEqual(["run step 1", "run step 2", "batch 1"]);
  });
});
