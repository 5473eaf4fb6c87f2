// The metric names a PromQL expression reads, and the names the daemon exports, so the alert rules
// and the dashboard can be checked against metrics/registry.ts.
import { createMetrics, createScaleOutMetrics } from "../../metrics/registry.js";

const KEYWORDS = new Set(["and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"]);

/** Every metric name read by `expr` (sorted, unique). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, " ") // label matchers (and Grafana variables in them)
    .replace(/\[[^\]]*\]/g, " ") // range and subquery windows
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\b(?:group_left|group_right)\b/g, " ");
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = match as unknown as [string, string, string | undefined];
    if (call !== undefined || KEYWORDS.has(name.toLowerCase())) continue; // functions and aggregations
    names.add(name);
  }
  return [...names].sort();
}

/** The series names the daemon's registry exposes (with the relay's and workers'): counters and gauges by name, histograms by their
 * _bucket, _sum and _count series, prom-client's default metrics (prefixed grouparoo_) included. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const metrics = createMetrics({ records: () => [], members: () => [], outboxDepth: () => [], runs: () => [], runProgress: () => [] });
  // The relay (its routes) and the workers (their partitions) export these beside the daemon's.
  createScaleOutMetrics(metrics.registry, { relayRoutes: () => 0, partitionsOwned: () => [] });
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    if (String(metric.type) === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`);
    else names.add(metric.name);
  }
  return names;
}

/** Metrics that other issues add, which the rules and dashboard already use (and why). */
export const PENDING_METRICS: Record<string, string> = {};

/** Names Prometheus itself produces for every target. */
export const PROMETHEUS_METRICS = new Set(["up"]);
