// The name of every metric the daemon exports (prefix grouparoo_, Prometheus naming), so components
// can say which ones they report and tests and dashboards can check them against one list.
export const METRICS = {
  changesApplied: "grouparoo_changes_applied_total",
  batchApplySeconds: "grouparoo_batch_apply_seconds",
  batchChanges: "grouparoo_batch_changes",
  groupTransitions: "grouparoo_group_transitions_total",
  exportsPlanned: "grouparoo_exports_planned_total",
  deadLetters: "grouparoo_dead_letters_total",
  exports: "grouparoo_exports_total",
  deliveryBatchSize: "grouparoo_delivery_batch_size",
  endToEndLatency: "grouparoo_end_to_end_latency_seconds",
  replicationLagBytes: "grouparoo_replication_lag_bytes",
  replicationLagSeconds: "grouparoo_replication_lag_seconds",
  snapshotRowsRead: "grouparoo_snapshot_rows_read",
  snapshotRowsEstimated: "grouparoo_snapshot_rows_estimated",
  kafkaConsumerLag: "grouparoo_kafka_consumer_lag",
  sourcesPaused: "grouparoo_sources_paused",
  records: "grouparoo_records",
  groupMembers: "grouparoo_group_members",
  outboxDepth: "grouparoo_outbox_depth",
  runs: "grouparoo_runs",
  runProgressRatio: "grouparoo_run_progress_ratio",
  runItems: "grouparoo_run_items_total",
  configReloads: "grouparoo_config_reload_total",
  aggregateRepairs: "grouparoo_aggregate_repairs_total",
  buildInfo: "grouparoo_build_info",
  // Relay and workers (README, "Relay and workers").
  relayEvents: "grouparoo_relay_events_total",
  relayRoutes: "grouparoo_relay_routes",
  partitionsOwned: "grouparoo_partitions_owned",
  rebalances: "grouparoo_rebalances_total",
  changelogRecords: "grouparoo_changelog_records_total",
  changelogTransactions: "grouparoo_changelog_transactions_total",
  restoredRecords: "grouparoo_restored_records_total",
  restoreSeconds: "grouparoo_restore_seconds",
} as const;

export type MetricName = (typeof METRICS)[keyof typeof METRICS];
