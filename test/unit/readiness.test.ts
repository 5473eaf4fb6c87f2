// /readyz's reasons for sources and destinations, one code for run, the relay and the worker
// (daemon/readiness.ts): each had its own copy of these lines.
import { describe, expect, it } from "vitest";
import { destinationReasons, sourceReasons } from "../../daemon/readiness.js";

const source = (appId: string, ready: boolean, problem: string | null = null, held = false) => ({ appId, ready: () => ready, problem: () => problem, held });
const destination = (destinationId: string, ready: boolean, problem: string | null = null) => ({ destinationId, ready: () => ready, problem: () => problem });

describe("readiness reasons", () => {
  it("name failing sources with their problem, then held ones, then those not connected; none when all are ready", () => {
    const sources = [source("a", true), source("b", false, "table gone"), source("c", false), source("d", false, null, true), source("e", false, "bad password")];
    expect(sourceReasons(sources, { is: (s) => s.held, reason: "sources waiting for the Runs removing what they read" })).toEqual([
      "sources failing: b (table gone); e (bad password)",
      "sources waiting for the Runs removing what they read: d",
      "sources not connected: c",
    ]);
    expect(sourceReasons(sources)).toEqual(["sources failing: b (table gone); e (bad password)", "sources not connected: c, d"]);
    expect(sourceReasons([source("a", true), { appId: "f", ready: () => true }])).toEqual([]);
  });

  it("name failing destinations with their problem, then unreachable ones", () => {
    expect(destinationReasons([destination("crm", false, "401"), destination("hook", false), destination("file", true)])).toEqual(["destinations failing: crm (401)", "destinations unreachable: hook"]);
    expect(destinationReasons([destination("file", true)])).toEqual([]);
  });
});
