// Every Prometheus metric the daemon exports, in one place (prefix grouparoo_, Prometheus naming).
// Counters and histograms are updated by the pipeline; gauges of state (records by model, members
// by group, outbox depth) are read from the store at scrape time through `collect`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface StateGauges {
  records(): Iterable<[modelId: string, count: number]>;
  members(): Iterable<[groupId: string, count: number]>;
  outboxDepth(): Iterable<[destinationId: string, depth: number]>;
}

export function createMetrics(state: StateGauges) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "grouparoo_" });
  const metrics = {
    registry,
    changesApplied: new Counter({
      name: "grouparoo_changes_applied_total",
      help: "Source changes applied to the state, by source and operation: insert, update, delete (Kafka tombstones included), truncate, snapshot.",
      labelNames: ["source", "op"] as const,
      registers: [registry],
    }),
    batchApplySeconds: new Histogram({
      name: "grouparoo_batch_apply_seconds",
      help: "Time to apply one batch and make it durable (one LMDB write transaction).",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    batchChanges: new Histogram({
      name: "grouparoo_batch_changes",
      help: "Changes per applied batch.",
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [registry],
    }),
    groupTransitions: new Counter({
      name: "grouparoo_group_transitions_total",
      help: "Records entering (+) and leaving (-) groups, by group and direction.",
      labelNames: ["group", "direction"] as const,
      registers: [registry],
    }),
    exportsPlanned: new Counter({
      name: "grouparoo_exports_planned_total",
      help: "Exports written to the outbox, by destination.",
      labelNames: ["destination"] as const,
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: "grouparoo_dead_letters_total",
      help: "Inputs set aside in the dead-letter store, by source or destination and kind.",
      labelNames: ["component", "kind"] as const,
      registers: [registry],
    }),
    exports: new Counter({
      name: "grouparoo_exports_total",
      help: "Exports handled by destinations, by destination and result (ok, info = skipped, retry, dead_letter).",
      labelNames: ["destination", "result"] as const,
      registers: [registry],
    }),
    deliveryBatchSize: new Histogram({
      name: "grouparoo_delivery_batch_size",
      help: "Exports per delivery request, by destination.",
      labelNames: ["destination"] as const,
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: [registry],
    }),
    endToEndLatency: new Histogram({
      name: "grouparoo_end_to_end_latency_seconds",
      help: "From the source's commit of a change to the destination's acknowledgement of its export.",
      labelNames: ["destination"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    replicationLagBytes: new Gauge({
      name: "grouparoo_replication_lag_bytes",
      help: "Postgres WAL written but not yet confirmed by the app's replication slot.",
      labelNames: ["app"] as const,
      registers: [registry],
    }),
    replicationLagSeconds: new Gauge({
      name: "grouparoo_replication_lag_seconds",
      help: "From the source's commit of the newest change of the last applied batch to its application, by stream.",
      labelNames: ["stream"] as const,
      registers: [registry],
    }),
    snapshotRowsRead: new Gauge({
      name: "grouparoo_snapshot_rows_read",
      help: "Rows the initial snapshot has read, by source and table.",
      labelNames: ["source", "table"] as const,
      registers: [registry],
    }),
    snapshotRowsEstimated: new Gauge({
      name: "grouparoo_snapshot_rows_estimated",
      help: "The table's estimated row count when its snapshot started (pg_class.reltuples).",
      labelNames: ["source", "table"] as const,
      registers: [registry],
    }),
    kafkaConsumerLag: new Gauge({
      name: "grouparoo_kafka_consumer_lag",
      help: "Messages behind the partition's high watermark after the last fetched batch, by topic and partition.",
      labelNames: ["topic", "partition"] as const,
      registers: [registry],
    }),
    sourcesPaused: new Gauge({
      name: "grouparoo_sources_paused",
      help: "1 while the pipeline holds its sources back (backpressure), else 0.",
      registers: [registry],
    }),
    records: new Gauge({
      name: "grouparoo_records",
      help: "Records held, by model.",
      labelNames: ["model"] as const,
      registers: [registry],
      collect() {
        for (const [model, count] of state.records()) this.set({ model }, count);
      },
    }),
    groupMembers: new Gauge({
      name: "grouparoo_group_members",
      help: "Members of each group.",
      labelNames: ["group"] as const,
      registers: [registry],
      collect() {
        for (const [group, count] of state.members()) this.set({ group }, count);
      },
    }),
    outboxDepth: new Gauge({
      name: "grouparoo_outbox_depth",
      help: "Exports waiting in the durable outbox, by destination.",
      labelNames: ["destination"] as const,
      registers: [registry],
      collect() {
        for (const [destination, depth] of state.outboxDepth()) this.set({ destination }, depth);
      },
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
