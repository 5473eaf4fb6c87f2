// The labels deploy/ reads exist on the metrics it reads them from: every label matcher of a series
// selector (`grouparoo_exports_total{result="dead_letter"}`), every label of `by (...)` and `on (...)`,
// every `{{ $labels.X }}` of an alert's annotations and every `{{X}}` of a dashboard legend is a label
// of a metric the expression reads (metrics/registry.ts, prom-client's defaults), or one Prometheus
// adds (`instance`, `job`; `le` on a histogram's buckets). The names alone are checked by
// prometheus.test.ts and grafana.test.ts: a label misspelt or moved (`{app}` where the metric has
// `stream`) made an alert fire never, or a legend print nothing, without either noticing.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createMetrics, createScaleOutMetrics } from "../../../metrics/registry.js";
import { metricNamesIn } from "../../helpers/promql.js";

const root = new URL("../../..", import.meta.url).pathname;
const TARGET_LABELS = ["instance", "job"];

/** Every series name the daemon exposes with its labels (histograms by _bucket, _sum, _count). */
async function labelsByName(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics({ records: () => [], members: () => [], outboxDepth: () => [], runs: () => [], runProgress: () => [] }, { version: "v", node: "n", layout: 4 });
  createScaleOutMetrics(metrics.registry, { relayRoutes: () => 0, partitionsOwned: () => [] });
  const byName = new Map<string, Set<string>>();
  for (const metric of metrics.registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[] }[]) {
    const labels = [...(metric.labelNames ?? [])];
    const { type } = (await metrics.registry.getSingleMetric(metric.name)?.get()) ?? { type: "" };
    if (String(type) === "histogram") {
      byName.set(`${metric.name}_bucket`, new Set([...labels, "le"]));
      for (const suffix of ["_sum", "_count"]) byName.set(`${metric.name}${suffix}`, new Set(labels));
    } else byName.set(metric.name, new Set(labels));
  }
  // prom-client's default metrics with labels the registry does not list by labelNames.
  for (const [name, labels] of Object.entries({ grouparoo_nodejs_gc_duration_seconds_sum: ["kind"], grouparoo_nodejs_gc_duration_seconds_count: ["kind"], grouparoo_nodejs_gc_duration_seconds_bucket: ["kind", "le"] })) byName.set(name, new Set(labels));
  byName.set("up", new Set());
  return byName;
}

/** The labels `expr` reads: its selectors' matchers by metric, and its by/on/ignoring/without lists. */
function labelsRead(expr: string): { selectors: [metric: string, label: string][]; grouping: string[] } {
  const selectors: [string, string][] = [];
  for (const match of expr.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    for (const matcher of (match[2] as string).matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) selectors.push([match[1] as string, matcher[1] as string]);
  }
  const grouping = [...expr.matchAll(/\b(?:by|on|ignoring|without)\s*\(([^)]*)\)/g)].flatMap((m) => (m[1] as string).split(",").map((l) => l.trim()).filter(Boolean));
  return { selectors, grouping };
}

function problems(expr: string, shown: string[], byName: Map<string, Set<string>>, where: string): string[] {
  const found: string[] = [];
  const read = metricNamesIn(expr);
  const available = new Set([...TARGET_LABELS, ...read.flatMap((name) => [...(byName.get(name) ?? [])])]);
  const { selectors, grouping } = labelsRead(expr);
  for (const [metric, label] of selectors) {
    if (!byName.has(metric) || TARGET_LABELS.includes(label)) continue;
    if (!byName.get(metric)?.has(label)) found.push(`${where}: ${metric} has no label ${label}`);
  }
  for (const label of [...grouping, ...shown]) if (!available.has(label)) found.push(`${where}: no metric of its expression has the label ${label}`);
  return found;
}

interface Rule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}
interface Panel {
  title: string;
  type: string;
  targets?: { expr: string; legendFormat?: string }[];
  panels?: Panel[];
}

describe("the labels deploy/ reads", () => {
  it("exist on the metrics each alert rule reads", async () => {
    const byName = await labelsByName();
    const rules = (parse(readFileSync(join(root, "deploy/prometheus/alerts.yml"), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
    const found = rules.flatMap((rule) => {
      const shown = Object.values(rule.annotations).flatMap((text) => [...text.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1] as string));
      return problems(rule.expr, shown, byName, rule.alert);
    });
    expect(found).toEqual([]);
  });

  it("exist on the metrics each dashboard panel reads", async () => {
    const byName = await labelsByName();
    const dashboard = JSON.parse(readFileSync(join(root, "deploy/grafana/grouparoo-stream.json"), "utf8")) as { panels: Panel[] };
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== "row");
    const found = panels.flatMap((panel) =>
      (panel.targets ?? []).flatMap((target) => {
        const shown = [...(target.legendFormat ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1] as string);
        return problems(target.expr, shown, byName, panel.title);
      }),
    );
    expect(found).toEqual([]);
  });

  it("names a label a metric does not have (the check can fail)", async () => {
    const byName = await labelsByName();
    expect(problems('sum by (instance, app) (grouparoo_replication_lag_seconds{stream="x", app="y"}) > 60', ["app", "stream"], byName, "broken")).toEqual([
      "broken: grouparoo_replication_lag_seconds has no label app",
      "broken: no metric of its expression has the label app",
      "broken: no metric of its expression has the label app",
    ]);
  });
});
