// Every Prometheus metric the daemon exports, in one place (prefix grouparoo_, Prometheus naming).
// Counters and histograms are updated by the pipeline; gauges of state (records by model, members
// by group, outbox depth) are read from the store at scrape time through `collect`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { METRICS } from "./names.js";

export interface StateGauges {
  records(): Iterable<[modelId: string, count: number]>;
  members(): Iterable<[groupId: string, count: number]>;
  outboxDepth(): Iterable<[destinationId: string, depth: number]>;
  /** Runs of the state by kind and state. */
  runs(): Iterable<[kind: string, state: string, count: number]>;
  /** The Runs in progress: their id, kind, target and how far they are (0 to 1; null when the total is unknown). */
  runProgress(): Iterable<[run: string, kind: string, target: string, ratio: number | null]>;
}

/** What grouparoo_build_info reports: the package version, the Node.js version running it, and the state layout it reads and writes (a daemon's). */
export interface BuildInfo {
  version: string;
  node: string;
  layout?: number;
}

export function createMetrics(state: StateGauges, build?: BuildInfo) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "grouparoo_" });
  const metrics = {
    registry,
    changesApplied: new Counter({
      name: METRICS.changesApplied,
      help: "Source changes applied to the state, by source and operation: insert, update, delete, tombstone (a Kafka message with a key and no value), truncate, snapshot.",
      labelNames: ["source", "op"] as const,
      registers: [registry],
    }),
    batchApplySeconds: new Histogram({
      name: METRICS.batchApplySeconds,
      help: "Time to apply one batch and make it durable (one LMDB write transaction).",
      // Up to 10 s: a slow disk's fsync (a batch past the last finite bucket reads as that bucket).
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    batchChanges: new Histogram({
      name: METRICS.batchChanges,
      help: "Changes per applied batch.",
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [registry],
    }),
    groupTransitions: new Counter({
      name: METRICS.groupTransitions,
      help: "Records entering and leaving groups, by group and direction (enter, leave): every record's transition counts, also when another record goes the other way in the same batch.",
      labelNames: ["group", "direction"] as const,
      registers: [registry],
    }),
    exportsPlanned: new Counter({
      name: METRICS.exportsPlanned,
      help: "Exports planned into the outbox, by destination (a newer export replacing an unsent one counts again).",
      labelNames: ["destination"] as const,
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: METRICS.deadLetters,
      help: "Inputs set aside in the dead-letter store, by source or destination and kind.",
      labelNames: ["component", "kind"] as const,
      registers: [registry],
    }),
    exports: new Counter({
      name: METRICS.exports,
      help: "Exports handled by destinations, by destination and result (ok, info = skipped, retry, dead_letter).",
      labelNames: ["destination", "result"] as const,
      registers: [registry],
    }),
    deliveryBatchSize: new Histogram({
      name: METRICS.deliveryBatchSize,
      help: "Exports per delivery request, by destination.",
      labelNames: ["destination"] as const,
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: [registry],
    }),
    endToEndLatency: new Histogram({
      name: METRICS.endToEndLatency,
      help: "From the source's commit of a change to the destination's acknowledgement of its export.",
      labelNames: ["destination"] as const,
      // Up to an hour: after an outage or a restart over a backlog, changes reach the destination minutes
      // late, and a quantile past the last finite bucket reads as that bucket (it read 60 s however late).
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [registry],
    }),
    replicationLagBytes: new Gauge({
      name: METRICS.replicationLagBytes,
      help: "Postgres WAL written but not yet confirmed by the app's replication slot.",
      labelNames: ["app"] as const,
      registers: [registry],
    }),
    replicationLagSeconds: new Gauge({
      name: METRICS.replicationLagSeconds,
      help: "From the source's commit of the newest change of the last applied batch to its application, by stream.",
      labelNames: ["stream"] as const,
      registers: [registry],
    }),
    snapshotRowsRead: new Gauge({
      name: METRICS.snapshotRowsRead,
      help: "Rows the initial snapshot has read, by source and table.",
      labelNames: ["source", "table"] as const,
      registers: [registry],
    }),
    snapshotRowsEstimated: new Gauge({
      name: METRICS.snapshotRowsEstimated,
      help: "The table's row count by its statistics when its snapshot started (pg_class.reltuples, or the planner's estimate for a table never analyzed), then the rows read once it is read to its end.",
      labelNames: ["source", "table"] as const,
      registers: [registry],
    }),
    kafkaConsumerLag: new Gauge({
      name: METRICS.kafkaConsumerLag,
      help: "Messages behind the partition's high watermark after the last fetched batch, by topic and partition.",
      labelNames: ["topic", "partition"] as const,
      registers: [registry],
    }),
    sourcesPaused: new Gauge({
      name: METRICS.sourcesPaused,
      help: "1 while the pipeline holds its sources back (backpressure), else 0.",
      registers: [registry],
    }),
    records: new Gauge({
      name: METRICS.records,
      help: "Records held, by model.",
      labelNames: ["model"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, count] of state.records()) this.set({ model }, count);
      },
    }),
    groupMembers: new Gauge({
      name: METRICS.groupMembers,
      help: "Members of each group.",
      labelNames: ["group"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [group, count] of state.members()) this.set({ group }, count);
      },
    }),
    outboxDepth: new Gauge({
      name: METRICS.outboxDepth,
      help: "Exports waiting in the durable outbox, by destination.",
      labelNames: ["destination"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [destination, depth] of state.outboxDepth()) this.set({ destination }, depth);
      },
    }),
    runs: new Gauge({
      name: METRICS.runs,
      help: "Runs of the state (work a config change needs), by kind and state (queued, running, complete, failed, stopped, superseded).",
      labelNames: ["kind", "state"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [kind, runState, count] of state.runs()) this.set({ kind, state: runState }, count);
      },
    }),
    runProgressRatio: new Gauge({
      name: METRICS.runProgressRatio,
      help: "How far each Run in progress is, from 0 to 1 (items done over items known at its start).",
      labelNames: ["run", "kind", "target"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [run, kind, target, ratio] of state.runProgress()) if (ratio !== null) this.set({ run, kind, target }, ratio);
      },
    }),
    runItems: new Counter({
      name: METRICS.runItems,
      help: "Items (records, rows, entries) Runs have processed, by kind.",
      labelNames: ["kind"] as const,
      registers: [registry],
    }),
    configReloads: new Counter({
      name: METRICS.configReloads,
      help: "Config reloads (SIGHUP, --watch-config), by result: applied, invalid (the running config is kept), or unchanged (the config running was read again; nothing restarted).",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    aggregateRepairs: new Counter({
      name: METRICS.aggregateRepairs,
      help: "Aggregates found inconsistent with their rows (another definition's state, a count below zero) and rebuilt from them, by property.",
      labelNames: ["property"] as const,
      registers: [registry],
    }),
    buildInfo: new Gauge({
      name: METRICS.buildInfo,
      help: "1, labelled with the grouparoo-stream version, the Node.js version running it and (a daemon's) the layout of the state it reads and writes.",
      labelNames: ["version", "node", "layout"] as const,
      registers: [registry],
    }),
  };
  if (build) metrics.buildInfo.set({ version: build.version, node: build.node, ...(build.layout === undefined ? {} : { layout: String(build.layout) }) }, 1);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What a relay or a worker reads at scrape time (README, "Relay and workers"). */
export interface ScaleOutGauges {
  /** Routes the relay keeps (rows of partitioned models' other sources). */
  relayRoutes?(): number;
  /** The partitions a worker owns, by model. */
  partitionsOwned?(): Iterable<[modelId: string, count: number]>;
}

/** The metrics of relay and worker modes, in the daemon's registry. */
export function createScaleOutMetrics(registry: Registry, gauges: ScaleOutGauges) {
  return {
    relayEvents: new Counter({
      name: METRICS.relayEvents,
      help: "Events the relay published (acknowledged by the broker), by model and op (insert, update, delete, snapshot, truncate, marker).",
      labelNames: ["model", "op"] as const,
      registers: [registry],
    }),
    relayRoutes: new Gauge({
      name: METRICS.relayRoutes,
      help: "Rows of partitioned models' non-primary sources whose partition the relay keeps.",
      // A relay's only: a worker does not export it.
      registers: gauges.relayRoutes ? [registry] : [],
      collect() {
        if (gauges.relayRoutes) this.set(gauges.relayRoutes());
      },
    }),
    partitionsOwned: new Gauge({
      name: METRICS.partitionsOwned,
      help: "Partitions of a partitioned model assigned to this worker (processing, or being restored or claimed), by model.",
      labelNames: ["model"] as const,
      // A worker's only.
      registers: gauges.partitionsOwned ? [registry] : [],
      collect() {
        this.reset();
        for (const [model, count] of gauges.partitionsOwned?.() ?? []) this.set({ model }, count);
      },
    }),
    rebalances: new Counter({
      name: METRICS.rebalances,
      help: "Consumer group assignments this worker received, by model.",
      labelNames: ["model"] as const,
      registers: [registry],
    }),
    changelogRecords: new Counter({
      name: METRICS.changelogRecords,
      help: "State writes sent to a changelog topic in committed transactions, by model.",
      labelNames: ["model"] as const,
      registers: [registry],
    }),
    changelogTransactions: new Counter({
      name: METRICS.changelogTransactions,
      help: "Kafka transactions of changelog records and consumer offsets, by model and result (committed, failed).",
      labelNames: ["model", "result"] as const,
      registers: [registry],
    }),
    restoredRecords: new Counter({
      name: METRICS.restoredRecords,
      help: "Changelog records a worker applied restoring partitions, by model.",
      labelNames: ["model"] as const,
      registers: [registry],
    }),
    restoreSeconds: new Histogram({
      name: METRICS.restoreSeconds,
      help: "Time to take a partition over: fencing its previous owner, then keeping the local state or restoring it from the changelog, by model and how (kept, restored).",
      labelNames: ["model", "how"] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [registry],
    }),
  };
}

export type ScaleOutMetrics = ReturnType<typeof createScaleOutMetrics>;
