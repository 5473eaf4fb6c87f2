// deploy/prometheus: `promtool check rules` accepts alerts.yml, `promtool test rules` passes
// alerts.test.yml, which has, for every alert, an evaluation where it fires and one where it must
// not; a copy with one threshold moved fails those tests (they bite); and every metric the rules read
// is one the daemon exports (or one of the Runs metrics another issue adds). promtool missing fails.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { exportedMetricNames, metricNamesIn, PENDING_METRICS, PROMETHEUS_METRICS } from "../../helpers/promql.js";
import { runTool } from "../../helpers/tools.js";

const root = new URL("../../..", import.meta.url).pathname;
const dir = join(root, "deploy/prometheus");
const RULES = join(dir, "alerts.yml");
const TESTS = join(dir, "alerts.test.yml");
// .ci/run extracts promtool from Debian's prometheus package into .cache/bin when it is not on PATH.
const cached = join(root, ".cache/bin/promtool");
const PROMTOOL = process.env.PROMTOOL ?? (existsSync(cached) ? cached : "promtool");
const promtool = (args: string[], cwd = dir) => runTool(PROMTOOL, args, "apt-get install prometheus, or let bash .ci/run extract it into .cache/bin", { cwd });

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface RuleTest {
  eval_time: string;
  alertname: string;
  exp_alerts: unknown[];
}
const rules = (parse(readFileSync(RULES, "utf8")) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const tests = (parse(readFileSync(TESTS, "utf8")) as { tests: { alert_rule_test: RuleTest[] }[] }).tests.flatMap((t) => t.alert_rule_test);

describe("deploy/prometheus/alerts.yml", () => {
  const work = mkdtempSync(join(tmpdir(), "promtool-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("passes promtool check rules", () => {
    const result = promtool(["check", "rules", RULES]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code).toBe(0);
  });

  it("passes promtool test rules alerts.test.yml", () => {
    const result = promtool(["test", "rules", TESTS]);
    expect(result.stdout + result.stderr).toBe("Unit Testing:  " + TESTS + "\n  SUCCESS\n\n");
    expect(result.code).toBe(0);
  });

  it("has the alerts the deployment needs, each with a severity, summary and description", () => {
    expect(rules.map((r) => r.alert)).toEqual([
      "GrouparooStreamDown",
      "GrouparooStreamAbsent",
      "GrouparooSourcesPaused",
      "GrouparooReplicationLagBytesHigh",
      "GrouparooReplicationLagBytesCritical",
      "GrouparooReplicationLagSecondsHigh",
      "GrouparooKafkaConsumerLagHigh",
      "GrouparooOutboxGrowing",
      "GrouparooOutboxNearBound",
      "GrouparooDeadLetters",
      "GrouparooExportsFailing",
      "GrouparooExportsDeadLettered",
      "GrouparooEndToEndLatencyHigh",
      "GrouparooEventLoopLagHigh",
      "GrouparooRunStuck",
    ]);
    for (const rule of rules) {
      expect(["page", "warning"], rule.alert).toContain(rule.labels.severity);
      expect(Object.keys(rule.annotations).sort(), rule.alert).toEqual(["description", "summary"]);
    }
  });

  it("tests every alert both firing and not firing", () => {
    for (const rule of rules) {
      const mine = tests.filter((t) => t.alertname === rule.alert);
      expect(mine.some((t) => t.exp_alerts.length > 0), `${rule.alert} fires in a test`).toBe(true);
      expect(mine.some((t) => t.exp_alerts.length === 0), `${rule.alert} stays silent in a test`).toBe(true);
    }
    expect(new Set(tests.map((t) => t.alertname))).toEqual(new Set(rules.map((r) => r.alert)));
  });

  it("fails promtool test rules when a threshold moves (the tests bite)", () => {
    const text = readFileSync(RULES, "utf8");
    expect(text).toContain("expr: grouparoo_outbox_depth > 80000");
    writeFileSync(join(work, "alerts.yml"), text.replace("expr: grouparoo_outbox_depth > 80000", "expr: grouparoo_outbox_depth > 95000"));
    copyFileSync(TESTS, join(work, "alerts.test.yml"));
    const result = promtool(["test", "rules", "alerts.test.yml"], work);
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toContain("alertname: GrouparooOutboxNearBound, time: 5m");
  });

  it("reads only metrics the daemon exports (the Runs metrics excepted until they land)", async () => {
    const exported = await exportedMetricNames();
    const read = new Set(rules.flatMap((r) => metricNamesIn(r.expr)));
    expect(read.size).toBeGreaterThanOrEqual(12);
    const unknown = [...read].filter((name) => !exported.has(name) && !PROMETHEUS_METRICS.has(name) && !(name in PENDING_METRICS));
    expect(unknown).toEqual([]);
  });
});
