// OutboxWatch: what the backpressure is told of the outbox depths. Its store here stands for
// Store.outboxDepthsFrom (tested against LMDB in test/integration/core/outbox.test.ts): the entry
// count of the whole outbox, and each destination's exact depth, counted only when asked to.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Store } from "../../state/store.js";
import { Backpressure, OutboxWatch } from "../../streams/backpressure.js";

function outbox() {
  const state = { entries: 0, exact: [0, 0], counts: 0 };
  const store = {
    outboxDepthsFrom(ids: readonly string[], floor: number, count = true): number[] | undefined {
      if (state.entries < floor) return ids.map(() => state.entries);
      if (!count) return undefined;
      state.counts += 1;
      return [...state.exact];
    },
  } as unknown as Store;
  return { state, store };
}

describe("OutboxWatch", () => {
  let watch: OutboxWatch | undefined;
  // The clock OutboxWatch reads (performance.now) and its timer, both fake.
  beforeEach(() => void vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] }));
  afterEach(() => {
    watch?.stop();
    vi.useRealTimers();
  });

  it("pauses at the bound after a batch, counts at most once per interval while the sources wait, and resumes once every destination is below half, even with no delivery answering after", () => {
    const pressure: boolean[] = [];
    const backpressure = new Backpressure({ highWaterMark: 1000, lowWaterMark: 100, outboxBound: 10 }, { changed: (_reason, full) => pressure.push(full) });
    const { state, store } = outbox();
    watch = new OutboxWatch(store, ["a", "b"], 10, () => backpressure, 50);

    // Far below half the bound: nothing counted, nothing paused.
    state.entries = 4;
    watch.look();
    watch.delivered();
    expect([state.counts, pressure]).toEqual([0, []]);

    // A batch brings one destination to its bound.
    Object.assign(state, { entries: 14, exact: [10, 4] });
    watch.look();
    expect([state.counts, pressure, backpressure.outboxAtBound]).toEqual([1, [true], true]);

    // Deliveries answer: the first counts, the next ones within the interval do not.
    Object.assign(state, { entries: 12, exact: [8, 4] });
    vi.advanceTimersByTime(60);
    watch.delivered();
    watch.delivered();
    watch.delivered();
    expect(state.counts).toBe(2);

    // The destination goes below half with that last answer, inside the interval: once it has
    // passed, the look skipped is taken and the sources resume.
    Object.assign(state, { entries: 8, exact: [4, 4] });
    watch.delivered();
    expect([state.counts, backpressure.outboxAtBound]).toEqual([2, true]);
    vi.advanceTimersByTime(49);
    expect([state.counts, backpressure.outboxAtBound]).toEqual([2, true]);
    vi.advanceTimersByTime(1);
    expect([state.counts, pressure, backpressure.outboxAtBound]).toEqual([3, [true, false], false]);
  });

  it("resumes at once when the outbox's entry count alone says every destination is below half", () => {
    const pressure: boolean[] = [];
    const backpressure = new Backpressure({ highWaterMark: 1000, lowWaterMark: 100, outboxBound: 10 }, { changed: (_reason, full) => pressure.push(full) });
    const { state, store } = outbox();
    watch = new OutboxWatch(store, ["a"], 10, () => backpressure, 60_000);
    Object.assign(state, { entries: 11, exact: [10, 0] });
    watch.look();
    Object.assign(state, { entries: 9, exact: [8, 0] });
    watch.delivered();
    watch.delivered();
    expect([state.counts, backpressure.outboxAtBound]).toEqual([2, true]);
    state.entries = 4;
    watch.delivered();
    expect([state.counts, pressure, backpressure.outboxAtBound]).toEqual([2, [true, false], false]);
  });

  it("looks no more once stopped (the store may close)", () => {
    const backpressure = new Backpressure({ highWaterMark: 1000, lowWaterMark: 100, outboxBound: 10 }, { changed: () => undefined });
    const { state, store } = outbox();
    watch = new OutboxWatch(store, ["a"], 10, () => backpressure, 30);
    Object.assign(state, { entries: 11, exact: [10] });
    watch.look();
    watch.delivered();
    watch.delivered();
    expect(state.counts).toBe(2);
    watch.stop();
    vi.advanceTimersByTime(60);
    watch.look();
    watch.delivered();
    expect(state.counts).toBe(2);
  });
});
