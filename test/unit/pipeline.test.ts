// The pipeline without I/O: batches bounded by size (group commit: what arrived during a commit is
// the next batch at once), work run one unit at a time in order,
// positions reported after commit, sources paused above the high-water mark and resumed below
// the low-water mark, and one timer armed for the earliest time-index boundary.
import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import type { BatchResult } from "../../streams/apply.js";
import type { Change } from "../../streams/change.js";
import { Pipeline, type CommittedBatch, type CoreOperations } from "../../streams/pipeline.js";

const empty = (): BatchResult => ({ applied: new Map(), deadLetters: 0, deadLettersBySource: new Map(), exports: 0, recordDelta: new Map(), memberDelta: new Map() });
const change = (i: number): Change => ({
  sourceId: "s",
  op: "insert",
  key: String(i),
  before: null,
  after: { id: i },
  position: { stream: i % 2 ? "odd" : "even", position: String(i) },
  commitTime: 0,
});

function harness(ops: Partial<CoreOperations>, options: { maxBatchSize?: number; maxBatchDelayMs?: number; highWaterMark?: number; lowWaterMark?: number; clock?: () => number } = {}) {
  const source = new Subject<Change>();
  const committed: CommittedBatch[] = [];
  const pressure: boolean[] = [];
  const pipeline = new Pipeline(
    source,
    {
      applyChanges: async () => empty(),
      sweep: async () => undefined,
      backfill: async () => undefined,
      nextBoundary: () => undefined,
      ...ops,
    },
    { committed: (b) => committed.push(b), pressure: (p) => pressure.push(p), failed: () => undefined },
    { maxBatchSize: options.maxBatchSize ?? 10, maxBatchDelayMs: options.maxBatchDelayMs ?? 5, highWaterMark: options.highWaterMark ?? 1000, lowWaterMark: options.lowWaterMark ?? 100, clock: options.clock ?? Date.now },
  );
  return { source, committed, pressure, pipeline, done: pipeline.run() };
}

describe("Pipeline", () => {
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
    // A delay far beyond the test timeout: only the group-commit cut can end this test in time.
    const h = harness({ applyChanges: async (changes) => (sizes.push(changes.length), await gate, empty()) }, { maxBatchSize: 10, maxBatchDelayMs: 600_000 });
    for (let i = 0; i < 10; i += 1) h.source.next(change(i));
    for (let i = 10; i < 23; i += 1) h.source.next(change(i));
    expect(sizes).toEqual([10]);
    release();
    await new Promise((r) => setTimeout(r, 20));
    expect(sizes).toEqual([10, 10, 3]);
    expect(h.committed.map((b) => b.changes)).toEqual([10, 10, 3]);
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

  it("arms one timer for the earliest boundary and sweeps when it comes", async () => {
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
    for (let waited = 0; sweeps.length === 0 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    expect(sweeps).toHaveLength(1);
    expect(sweeps[0]).toBeGreaterThanOrEqual(start + 40);
    expect(h.committed.map((b) => b.kind)).toEqual(["sweep"]);
    h.source.complete();
    h.pipeline.drain();
    await h.done;
  });

  it("applies changes that arrive during a long backfill between its chunks, not after it", async () => {
    const order: string[] = [];
    const h = harness({
      applyChanges: async (changes) => (order.push(`batch ${changes.length}`), empty()),
      backfill: async (task) => {
        const chunk = Number(task.after ?? 0) + 1;
        order.push(`chunk ${chunk}`);
        await new Promise((r) => setTimeout(r, 5));
        return chunk < 40 ? { ...task, after: String(chunk) } : undefined;
      },
    });
    h.pipeline.backfill({ groupId: "g", modelId: "m", runId: "run" });
    await new Promise((r) => setTimeout(r, 30));
    h.source.next(change(1));
    for (let waited = 0; !order.includes("chunk 40") && waited < 5000; waited += 5) await new Promise((r) => setTimeout(r, 5));
    // The batch ran within a few chunks of its change (about the 6th), long before the 40th.
    expect(order.indexOf("batch 1")).toBeGreaterThan(0);
    expect(order.indexOf("batch 1")).toBeLessThan(order.indexOf("chunk 20"));
    expect(order.filter((o) => o.startsWith("chunk"))).toHaveLength(40);
    h.source.complete();
    h.pipeline.drain();
    await h.done;
  });

  it("runs backfill chunks between batches until the run is done", async () => {
    const order: string[] = [];
    const h = harness({
      applyChanges: async (changes) => (order.push(`batch ${changes.length}`), empty()),
      backfill: async (task) => {
        order.push(`backfill after ${task.after ?? "-"}`);
        return task.after === undefined ? { ...task, after: "r1" } : undefined;
      },
    });
    h.pipeline.backfill({ groupId: "g", modelId: "m", runId: "run" });
    await new Promise((r) => setTimeout(r, 20));
    h.source.next(change(1));
    h.source.complete();
    h.pipeline.drain();
    await h.done;
    expect(order).toEqual(["backfill after -", "backfill after r1", "batch 1"]);
  });
});
