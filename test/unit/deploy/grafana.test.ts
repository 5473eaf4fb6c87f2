// deploy/grafana/grouparoo-stream.json: the six rows in order, every panel queries the dashboard's
// data source variable, panels do not overlap, every expression parses as PromQL (promtool check rules
// over them as recording rules, Grafana's variables filled in), and every metric name in every
// expression and variable query is one the daemon exports (metrics/registry.ts with prom-client's
// default metrics, histograms by _bucket/_sum/_count), `up`, or one of the Runs metrics to come.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { METRICS } from "../../../metrics/names.js";
import { exportedMetricNames, metricNamesIn, PENDING_METRICS, PROMETHEUS_METRICS } from "../../helpers/promql.js";
import { runTool } from "../../helpers/tools.js";

const root = new URL("../../..", import.meta.url).pathname;
const FILE = join(root, "deploy/grafana/grouparoo-stream.json");
const cached = join(root, ".cache/bin/promtool");
const PROMTOOL = process.env.PROMTOOL ?? (existsSync(cached) ? cached : "promtool");

interface Target {
  expr: string;
  datasource: { type: string; uid: string };
  refId: string;
}
interface Panel {
  type: string;
  id: number;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}
const load = (): Dashboard => JSON.parse(readFileSync(FILE, "utf8")) as Dashboard;
const allPanels = (d: Dashboard) => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = (d: Dashboard) => allPanels(d).filter((p) => p.type !== "row");

/** Every PromQL expression of the dashboard: panel targets and query variables. */
function expressions(d: Dashboard): string[] {
  const variables = d.templating.list.filter((v) => v.type === "query").map((v) => (typeof v.query === "string" ? v.query : v.query.query));
  return [...queryPanels(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...variables];
}

/** Metric names read by the dashboard that the daemon does not export. */
function unknownMetrics(d: Dashboard, exported: Set<string>): string[] {
  const names = new Set(
    expressions(d).flatMap((expr) => {
      const labelValues = /^label_values\(\s*([a-zA-Z_:][\w:]*)/.exec(expr);
      return labelValues ? [labelValues[1] as string] : metricNamesIn(expr);
    }),
  );
  return [...names].filter((n) => !exported.has(n) && !PROMETHEUS_METRICS.has(n) && !(n in PENDING_METRICS)).sort();
}

describe("deploy/grafana/grouparoo-stream.json", () => {
  const dashboard = load();
  const work = mkdtempSync(join(tmpdir(), "grafana-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("has the six rows, in order, each with panels", () => {
    const rows = dashboard.panels.filter((p) => p.type === "row");
    expect(rows.map((r) => r.title)).toEqual(["Sources & lag", "Pipeline & batches", "Groups & records", "Destinations, outbox, exports & latency", "Runs", "Process"]);
    const indexes = rows.map((r) => dashboard.panels.indexOf(r));
    for (const [i, index] of indexes.entries()) {
      const next = indexes[i + 1] ?? dashboard.panels.length;
      expect(next - index - 1, rows[i]?.title).toBeGreaterThanOrEqual(2);
    }
  });

  it("queries the data source variable from every panel, with unique ids and no overlap", () => {
    expect(dashboard.templating.list.map((v) => [v.name, v.type])).toEqual([
      ["datasource", "datasource"],
      ["instance", "query"],
    ]);
    const panels = queryPanels(dashboard);
    expect(panels.length).toBeGreaterThanOrEqual(25);
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource, panel.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      for (const target of panel.targets ?? []) {
        expect(target.datasource, panel.title).toEqual({ type: "prometheus", uid: "${datasource}" });
        expect(target.expr, panel.title).toMatch(/\$instance/);
      }
    }
    const ids = allPanels(dashboard).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = allPanels(dashboard).map((p) => p.gridPos);
    for (const [i, a] of boxes.entries()) {
      expect(a.x + a.w).toBeLessThanOrEqual(24);
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${JSON.stringify(a)} and ${JSON.stringify(b)}`).toBe(false);
      }
    }
  });

  it("has expressions that all parse as PromQL (promtool check rules)", () => {
    const exprs = expressions(dashboard).filter((e) => !e.startsWith("label_values("));
    const rules = { groups: [{ name: "dashboard", rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr: expr.replaceAll("$__rate_interval", "1m").replaceAll("$instance", ".*") })) }] };
    writeFileSync(join(work, "dashboard-rules.yml"), stringify(rules));
    const result = runTool(PROMTOOL, ["check", "rules", join(work, "dashboard-rules.yml")], "apt-get install prometheus, or let bash .ci/run extract it into .cache/bin");
    expect(result.stdout + result.stderr).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(result.code).toBe(0);
  });

  it("reads only metrics the daemon exports (the Runs metrics excepted until they land)", async () => {
    const exported = await exportedMetricNames();
    for (const name of Object.values(METRICS)) {
      expect([...exported].some((n) => n === name || n === `${name}_bucket`), name).toBe(true);
    }
    expect(exported).toContain("grouparoo_process_resident_memory_bytes");
    expect(exported).toContain("grouparoo_nodejs_gc_duration_seconds_sum");
    expect(unknownMetrics(dashboard, exported)).toEqual([]);
    const read = new Set(expressions(dashboard).flatMap(metricNamesIn));
    expect(read.size).toBeGreaterThanOrEqual(30);
  });

  it("names a metric the daemon does not export when a panel reads one (the check can fail)", async () => {
    const broken = load();
    const panel = queryPanels(broken)[0];
    panel?.targets?.push({ expr: 'rate(grouparoo_bogus_total{instance=~"$instance"}[$__rate_interval]) / grouparoo_records_total', datasource: { type: "prometheus", uid: "${datasource}" }, refId: "Z" });
    broken.templating.list.push({ name: "x", type: "query", query: "label_values(grouparoo_nope, instance)" });
    expect(unknownMetrics(broken, await exportedMetricNames())).toEqual(["grouparoo_bogus_total", "grouparoo_nope", "grouparoo_records_total"]);
  });
});
