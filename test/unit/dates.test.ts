import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { civilFromDays, DAY_MS, daysFromCivil, daysInMonth, parseDateText } from "../../core/dates.js";

describe("civil dates", () => {
  it("maps days to the calendar and back, as Date does in its range", () => {
    fc.assert(
      fc.property(fc.integer({ min: -100_000_000, max: 100_000_000 }), (days) => {
        const [year, month, day] = civilFromDays(days);
        expect(daysFromCivil(year, month, day)).toBe(days);
        expect(month).toBeGreaterThanOrEqual(1);
        expect(day).toBeLessThanOrEqual(daysInMonth(year, month));
        const date = new Date(days * DAY_MS);
        expect([year, month, day]).toEqual([date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()]);
      }),
    );
  });

  it("knows the edges: the epoch, leap days, year 0", () => {
    expect(civilFromDays(0)).toEqual([1970, 1, 1]);
    expect(civilFromDays(-1)).toEqual([1969, 12, 31]);
    expect(civilFromDays(daysFromCivil(2000, 2, 29))).toEqual([2000, 2, 29]);
    expect(civilFromDays(daysFromCivil(1900, 3, 1) - 1)).toEqual([1900, 2, 28]);
    expect(civilFromDays(daysFromCivil(0, 1, 1))).toEqual([0, 1, 1]);
    expect(parseDateText("2020-02-30")).toBeNull();
  });
});
