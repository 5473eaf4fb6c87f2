// What the committed batches record in the metrics: grouparoo_replication_lag_seconds by stream, and
// its series going once a stream has ended (an initial snapshot, a Run's re-read). A snapshot's rows
// carry the instant it started, so its last batch's lag is how long it had been reading (minutes for a
// large table); no later batch of that stream replaced it, and GrouparooReplicationLagSecondsHigh
// (above 60 s for 5 minutes) fired for the life of the process after any snapshot longer than a minute.
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../metrics/registry.js";
import { recordCommitted, streamEnded } from "../../daemon/observe.js";
import type { CommittedBatch } from "../../streams/pipeline.js";
import { emptyBatchResult } from "../../core/apply.js";

const none = () => [];
const metrics = () => createMetrics({ records: none, members: none, outboxDepth: none, runs: none, runProgress: none });
const lag = async (m: ReturnType<typeof metrics>) => Object.fromEntries((await m.replicationLagSeconds.get()).values.map((v) => [v.labels.stream, v.value]));
const batch = (positions: [string, string][], commitTimes: [string, number][]): CommittedBatch => ({
  kind: "changes",
  changes: commitTimes.length,
  positions: new Map(positions),
  commitTimes: new Map(commitTimes),
  result: emptyBatchResult(),
  seconds: 0.01,
});

describe("the replication lag by stream", () => {
  it("is set by each batch, and goes once an initial snapshot completes (its last rows in the same batch)", async () => {
    const m = metrics();
    const started = Date.now() - 600_000;
    recordCommitted(m, batch([["postgres:shop:snapshot", "running:0/16B3748"], ["postgres:shop", "0/16B3800"]], [["postgres:shop:snapshot", started], ["postgres:shop", Date.now() - 2_000]]));
    const during = await lag(m);
    expect(during["postgres:shop:snapshot"]).toBeGreaterThanOrEqual(600);
    expect(during["postgres:shop"]).toBeGreaterThanOrEqual(2);
    recordCommitted(m, batch([["postgres:shop:snapshot", "complete:0/16B3748"]], [["postgres:shop:snapshot", started]]));
    const after = await lag(m);
    expect(Object.keys(after)).toEqual(["postgres:shop"]);
  });

  it("goes for a Run's re-read once it completes, and stays for the streams that go on", async () => {
    const m = metrics();
    recordCommitted(m, batch([["run:mx1-000-reread", JSON.stringify({ rows: 10 })]], [["run:mx1-000-reread", Date.now()]]));
    expect(Object.keys(await lag(m))).toEqual(["run:mx1-000-reread"]);
    recordCommitted(m, batch([["run:mx1-000-reread", JSON.stringify({ rows: 20, complete: true })], ["kafka:k:events:0", "41"]], [["kafka:k:events:0", Date.now()]]));
    expect(Object.keys(await lag(m))).toEqual(["kafka:k:events:0"]);
  });

  it("reads about 0 for a stream whose last batch held only its idle keepalive's marker, and has no series for an app's record of its tables", async () => {
    const m = metrics();
    recordCommitted(m, batch([["postgres:shop", "0/16B3800"]], [["postgres:shop", Date.now() - 76_000]]));
    expect((await lag(m))["postgres:shop"]).toBeGreaterThanOrEqual(76);
    // The markers' commit times: the server's keepalive once everything it sent is applied, and the tables' record.
    recordCommitted(m, batch([["postgres:shop", "0/16B3900"], ["postgres:shop:tables", "{}"]], [["postgres:shop", Date.now()], ["postgres:shop:tables", Date.now()]]));
    const after = await lag(m);
    expect(Object.keys(after)).toEqual(["postgres:shop"]);
    expect(after["postgres:shop"]).toBeLessThan(1);
  });

  it("tells the last position of a stream", () => {
    expect(streamEnded("postgres:shop:snapshot", "complete:0/1")).toBe(true);
    expect(streamEnded("postgres:shop:snapshot", "running:0/1")).toBe(false);
    expect(streamEnded("postgres:shop", "0/1")).toBe(false);
    expect(streamEnded("run:x", "complete")).toBe(true);
    expect(streamEnded("run:x", JSON.stringify({ rows: 3, complete: true }))).toBe(true);
    expect(streamEnded("run:x", JSON.stringify({ rows: 3 }))).toBe(false);
    expect(streamEnded("kafka:k:complete:0", "complete:1")).toBe(false);
  });
});
