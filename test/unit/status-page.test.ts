// The status page's progress of a Run, with and without a total.
import { describe, expect, it } from "vitest";
import { runProgressLabel } from "../../daemon/api/page.js";

describe("a Run's progress on the status page", () => {
  it("is its share of its total, capped at 100 %", () => {
    expect(runProgressLabel({ processed: 1_000, total: 4_000, state: "running" })).toEqual({ ratio: 0.25, label: "25 % (1,000 / 4,000)" });
    expect(runProgressLabel({ processed: 400, total: 400, state: "complete" })).toEqual({ ratio: 1, label: "100 % (400 / 400)" });
    expect(runProgressLabel({ processed: 450, total: 400, state: "running" })).toEqual({ ratio: 1, label: "100 % (450 / 400)" });
  });

  it("without a total, is what it did, and 100 % once complete, with no total made up", () => {
    expect(runProgressLabel({ processed: 80_000, total: null, state: "running" })).toEqual({ ratio: null, label: "80,000 done" });
    expect(runProgressLabel({ processed: 89_266, total: null, state: "complete" })).toEqual({ ratio: 1, label: "100 % (89,266 done)" });
  });
});
