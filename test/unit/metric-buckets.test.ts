// The histograms' buckets reach as far as their values go in an SRE's day: a quantile past the last
// finite bucket reads as that bucket's bound. Before 2026-12-03 end-to-end latency stopped at 60 s, so
// after an outage, with changes reaching the destination half an hour late, its p99 read 60 s; batch
// apply time stopped at 2.5 s, below a slow disk's fsync.
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../metrics/registry.js";

const none = () => [];
const bounds = async (name: string) => {
  const m = createMetrics({ records: none, members: none, outboxDepth: none, runs: none, runProgress: none });
  m.endToEndLatency.observe({ destination: "crm" }, 1200);
  m.batchApplySeconds.observe(7);
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  // The finite buckets an observation counts in, by their upper bound.
  return (metric?.values ?? []).filter((v) => (v as { metricName?: string }).metricName === `${name}_bucket` && v.labels.le !== "+Inf" && v.value > 0).map((v) => Number(v.labels.le));
};

describe("the histograms' buckets", () => {
  it("place a change 20 minutes late in a finite end-to-end latency bucket (1800 s), up to an hour", async () => {
    expect(await bounds("grouparoo_end_to_end_latency_seconds")).toEqual([1800, 3600]);
  });

  it("place a 7 s batch in a finite apply-time bucket (10 s)", async () => {
    expect(await bounds("grouparoo_batch_apply_seconds")).toEqual([10]);
  });
});
