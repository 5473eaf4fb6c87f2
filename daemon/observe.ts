// What the daemon records in the metrics (defined in metrics/) as batches commit and destinations
// answer, and what sources report through their observer.
import type { BatchResult } from "../core/apply.js";
import type { OutboxEntry, Store } from "../state/store.js";
import type { SourceObserver } from "../connectors/types.js";
import type { Metrics } from "../metrics/registry.js";
import type { DeliveryOutcome } from "../streams/delivery.js";
import type { CommittedBatch } from "../streams/pipeline.js";
import { listRuns, runComplete, type RunState } from "../streams/runs.js";

/** grouparoo_runs at scrape time: the Runs these states hold, by kind and state. */
export function runCounts(stores: Iterable<Store>): [kind: string, state: string, count: number][] {
  const counts = new Map<string, [string, string, number]>();
  for (const store of stores) {
    for (const run of listRuns(store)) {
      const key = `${run.kind}\u0000${run.state}`;
      const entry = counts.get(key) ?? [run.kind, run.state, 0];
      entry[2] += 1;
      counts.set(key, entry);
    }
  }
  return [...counts.values()];
}

/** grouparoo_run_progress_ratio at scrape time: the running Runs' share of their records done (null: unknown). */
export function runningProgress(runs: Iterable<RunState>): [run: string, kind: string, target: string, ratio: number | null][] {
  return [...runs].filter((r) => r.state === "running").map((r) => [r.id, r.kind, r.target, r.total ? Math.min(1, r.processed / r.total) : null]);
}

export function recordCommitted(metrics: Metrics, batch: CommittedBatch): void {
  if (!batch.result) return;
  if (batch.kind === "changes") {
    metrics.batchApplySeconds.observe(batch.seconds);
    metrics.batchChanges.observe(batch.changes);
    const now = Date.now();
    // Markers count (a stream caught up and quiet reads about 0 from its idle keepalive's marker),
    // but not a postgres-cdc app's record of its tables (`<stream>:tables`), which carries no data.
    for (const [stream, commitTime] of batch.commitTimes) if (!stream.endsWith(":tables")) metrics.replicationLagSeconds.set({ stream }, Math.max(0, now - commitTime) / 1000);
    // A stream that ended with this batch (an initial snapshot, a Run's re-read) has no lag from now on:
    // its last value (how long the snapshot had been reading, minutes for a large table) would stay for
    // the life of the process, and an alert on it fire, as no later batch of that stream replaces it.
    for (const [stream, position] of batch.positions) if (streamEnded(stream, position)) metrics.replicationLagSeconds.remove({ stream });
  }
  recordResult(metrics, batch.result);
}

/** Whether `position` is the last of its stream: a postgres-cdc snapshot's `complete:LSN`, or a Run's re-read complete. */
export function streamEnded(stream: string, position: string): boolean {
  if (stream.startsWith("run:")) return runComplete(position);
  return stream.endsWith(":snapshot") && position.startsWith("complete:");
}

/** What a committed unit of work did (a batch of changes, a sweep, a Run's chunk), into the metrics. */
export function recordResult(metrics: Metrics, result: BatchResult): void {
  for (const [source, ops] of result.applied) for (const [op, n] of ops) metrics.changesApplied.inc({ source, op }, n);
  // Every record's transition: one entering and another leaving in the same batch are both counted.
  for (const [group, n] of result.entered) metrics.groupTransitions.inc({ group, direction: "enter" }, n);
  for (const [group, n] of result.left) metrics.groupTransitions.inc({ group, direction: "leave" }, n);
  for (const [destination, n] of result.exportsByDestination) metrics.exportsPlanned.inc({ destination }, n);
  for (const [source, kinds] of result.deadLettersBySource) for (const [kind, n] of kinds) metrics.deadLetters.inc({ component: source, kind }, n);
}

/** The results a destination's exports are counted under (grouparoo_exports_total's result label). */
export const EXPORT_RESULTS = ["ok", "info", "retry", "dead_letter"] as const;

/**
 * Starts at 0 the counter series the alert rules watch with increase() and rate(): each destination's
 * exports by result and its dead-lettered exports, each source's dead letters of both kinds. A series
 * born at its first event (at 1) has no earlier sample to rise from, so Prometheus's increase() over
 * it is 0: the first dead letter since a start would never fire GrouparooDeadLetters or
 * GrouparooExportsDeadLettered. Called at every start and applied reload (an added source or
 * destination); adding 0 leaves a series already counting as it is.
 */
export function zeroCounters(metrics: Metrics, components: { sources: readonly { id: string }[]; destinations: readonly { id: string }[] }): void {
  for (const { id } of components.destinations) {
    for (const result of EXPORT_RESULTS) metrics.exports.inc({ destination: id, result }, 0);
    metrics.deadLetters.inc({ component: id, kind: "export" }, 0);
  }
  for (const { id } of components.sources) for (const kind of ["change", "message"] as const) metrics.deadLetters.inc({ component: id, kind }, 0);
}

export function recordDelivered(metrics: Metrics, destinationId: string, outcomes: readonly DeliveryOutcome<OutboxEntry>[], batchSize: number): void {
  metrics.deliveryBatchSize.observe({ destination: destinationId }, batchSize);
  const now = Date.now();
  for (const outcome of outcomes) {
    const result = outcome.status === "error" ? (outcome.retryAt === undefined ? "dead_letter" : "retry") : outcome.status;
    metrics.exports.inc({ destination: destinationId, result });
    // An export the destination refused for good is a dead letter like a change or a message is.
    if (result === "dead_letter") metrics.deadLetters.inc({ component: destinationId, kind: "export" });
    if (outcome.status === "ok") metrics.endToEndLatency.observe({ destination: destinationId }, Math.max(0, now - outcome.entry.commitTime) / 1000);
  }
}

/**
 * What sources report, into the metrics, while `active()` (a generation's sources, until it stops: a
 * lag poll or a fetch of a connector that was stopped, answering late, reports nothing).
 */
export function sourceObserver(metrics: Metrics, active: () => boolean = () => true): SourceObserver {
  return {
    consumerLag: (topic, partition, lag) => {
      if (active()) metrics.kafkaConsumerLag.set({ topic, partition: String(partition) }, lag);
    },
    replicationLagBytes: (app, bytes) => {
      if (active()) metrics.replicationLagBytes.set({ app }, bytes);
    },
    snapshotProgress: (source, table, read, estimated) => {
      if (!active()) return;
      metrics.snapshotRowsRead.set({ source, table }, read);
      metrics.snapshotRowsEstimated.set({ source, table }, estimated);
    },
  };
}

/**
 * Forgets what the sources of a stopped generation reported (lag by app, stream, topic and partition;
 * snapshot progress): a reload starts its sources afresh, as a restart does, and a series of an app,
 * source or topic the new config no longer reads would otherwise keep its last value (and an alert on
 * it firing) for the life of the process.
 */
export function forgetSourceReports(metrics: Metrics): void {
  metrics.replicationLagBytes.reset();
  metrics.replicationLagSeconds.reset();
  metrics.kafkaConsumerLag.reset();
  metrics.snapshotRowsRead.reset();
  metrics.snapshotRowsEstimated.reset();
}
