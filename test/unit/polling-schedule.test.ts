// Schedules longer than a Node timer takes: setInterval with more than 2^31 - 1 ms fires after 1 ms
// (with a TimeoutOverflowWarning), so a monthly schedule ran its source back to back.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_MS, repeat } from "../../connectors/postgres/polling.js";

describe("repeat: a schedule's period", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const DAY = 86_400_000;

  it("waits out a period longer than a Node timer takes (30 days), each time, until cleared", () => {
    let runs = 0;
    const timer = repeat(30 * DAY, () => (runs += 1));
    vi.advanceTimersByTime(1000);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(30 * DAY - MAX_TIMER_MS - 1000 - 1);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(1);
    expect(runs).toBe(1);
    vi.advanceTimersByTime(30 * DAY);
    expect(runs).toBe(2);
    timer.clear();
    vi.advanceTimersByTime(90 * DAY);
    expect(runs).toBe(2);
  });

  it("repeats a period a Node timer takes (an hour, and the longest) as an interval", () => {
    let runs = 0;
    const hourly = repeat(3_600_000, () => (runs += 1));
    vi.advanceTimersByTime(3 * 3_600_000);
    expect(runs).toBe(3);
    hourly.clear();
    runs = 0;
    const longest = repeat(MAX_TIMER_MS, () => (runs += 1));
    vi.advanceTimersByTime(MAX_TIMER_MS - 1);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(1);
    expect(runs).toBe(1);
    longest.clear();
    vi.advanceTimersByTime(2 * MAX_TIMER_MS);
    expect(runs).toBe(1);
  });
});
