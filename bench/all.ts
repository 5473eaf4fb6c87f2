// `npm run bench`: every benchmark, each in its own Node process with the launcher's flags (a fresh heap,
// no JIT state shared between them), one after the other on an otherwise idle machine; each prints one
// JSON line, and this prints them as one table: what was measured, the ceiling it is compared with in
// the same run, the ratio, and the target its issue set. BENCH_ONLY=apply,daemon picks benchmarks;
// the daemon benchmark's scenarios are picked with BENCH_DAEMON (see bench/daemon.ts).
import { spawn } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { NODE_FLAGS } from "../daemon/node-flags.js";

type Json = Record<string, unknown>;
interface Line {
  benchmark: string;
  measure: string;
  value: string;
  ceiling: string;
  ratio: string;
  target: string;
}

const n = (v: unknown): string => (typeof v === "number" ? v.toLocaleString("en") : String(v ?? "-"));
const pct = (v: unknown): string => (typeof v === "number" ? `${(v * 100).toFixed(1)} %` : "-");
const met = (ratio: unknown, target: number): string => (typeof ratio === "number" ? `≥ ${target * 100} % (${ratio >= target ? "met" : "not met"})` : "-");

/** Each benchmark: its file, and how its JSON line reads as rows of the table. */
const BENCHMARKS: { name: string; file: string; rows: (r: Json) => Line[] }[] = [
  {
    name: "daemon",
    file: "bench/daemon.ts",
    rows: (r) =>
      (r.results as Json[]).flatMap((s) => {
        const target = s.scenario === "users10" || s.scenario === "users10-1M" || s.scenario === "users10-1M-records" ? 0.4 : s.scenario === "purchases10" || s.scenario === "purchases10-3M-rows" ? 0.3 : undefined;
        const lines: Line[] = [
          { benchmark: `daemon ${String(s.scenario)}`, measure: "changes/s through `run` (to confirmed_flush_lsn)", value: n(s.daemonPerSecond), ceiling: `raw pgoutput decode ${n(s.rawPerSecond)}`, ratio: pct(s.daemonToRaw), target: target ? met(s.daemonToRaw, target) : "-" },
          { benchmark: `daemon ${String(s.scenario)}`, measure: "RSS at the end, and its peak (MiB; heap used / committed, LMDB resident of its file)", value: `${n(s.rssMiB)}, peak ${n(s.peakRssMiB)} (${n(s.heapUsedMiB)} / ${n(s.heapTotalMiB)}, ${n(s.lmdbResidentMiB)} of ${n(s.lmdbFileMiB)})`, ceiling: "-", ratio: "-", target: "< 400" },
          { benchmark: `daemon ${String(s.scenario)}`, measure: "restart to the replication stream / to /readyz (s)", value: `${n(s.restartToStreamSeconds)} / ${n(s.restartToReadySeconds)}`, ceiling: "-", ratio: "-", target: "< 3" },
        ];
        if (s.deliveredPerSecond !== undefined) {
          lines.push({ benchmark: `daemon ${String(s.scenario)}`, measure: "changes/s until the destination holds the backlog's end", value: n(s.deliveredPerSecond), ceiling: "-", ratio: "-", target: "-" });
        }
        if (s.backfillRecordsPerSecond !== undefined) {
          lines.push({ benchmark: `daemon ${String(s.scenario)}`, measure: `group added by SIGHUP: backfill records/s (${n(s.backfillRecords)} records)`, value: n(s.backfillRecordsPerSecond), ceiling: "-", ratio: "-", target: "≥ 300,000" });
        }
        return lines;
      }).concat(
        Object.entries((r.groupCost ?? {}) as Record<string, number>).map(([scenario, cost]) => ({
          benchmark: `daemon ${scenario}`,
          measure: `cost of its groups: 1 - its rate / users0's (medians of ${String(r.rounds)} runs)`,
          value: pct(cost),
          ceiling: "users0 (no groups)",
          ratio: "-",
          target: scenario === "users10" ? `≤ 15 % (${cost <= 0.15 ? "met" : "not met"})` : `≤ 40 % (${cost <= 0.4 ? "met" : "not met"})`,
        })),
      ),
  },
  {
    name: "apply",
    file: "bench/apply.ts",
    rows: (r) => [
      { benchmark: "apply (core, in process)", measure: "changes/s, 10 groups, 6 aggregates, 1 destination", value: n(r.coreChangesPerSecond), ceiling: `minimal LMDB work ${n(r.minimalWorkPerSecond)}`, ratio: pct(Number(r.coreChangesPerSecond) / Number(r.minimalWorkPerSecond)), target: met(Number(r.coreChangesPerSecond) / Number(r.minimalWorkPerSecond), 0.5) },
    ],
  },
  {
    name: "pgoutput",
    file: "bench/pgoutput.ts",
    rows: (r) => [{ benchmark: "pgoutput (in process)", measure: "changes/s into committed state, 3 properties, 2 groups", value: n(r.endToEndPerSecond), ceiling: `raw pgoutput decode ${n(r.rawDecodePerSecond)}`, ratio: pct(r.endToEndToRaw), target: "-" }],
  },
  {
    name: "kafka",
    file: "bench/kafka.ts",
    rows: (r) => [
      { benchmark: "kafka (in process)", measure: "messages/s into committed state", value: n(r.intoStatePerSecond), ceiling: `bare kafkajs ${n(r.bareKafkajsPerSecond)}`, ratio: pct(r.stateToBare), target: met(r.stateToBare, 0.6) },
      { benchmark: "kafka (in process)", measure: "messages/s of bare kafkajs parsing each key and value as JSON", value: n(r.bareParsedPerSecond), ceiling: `bare kafkajs ${n(r.bareKafkajsPerSecond)}`, ratio: pct(r.parsedToBare), target: "-" },
    ],
  },
  {
    name: "latency",
    file: "bench/latency.ts",
    rows: (r) =>
      (r.results as Json[]).map((s) => ({ benchmark: `latency ${String(s.destination)} ${n(s.targetRate)}/s`, measure: "commit to destination ack, p50 / p99 / max (ms)", value: `${n(s.p50Ms)} / ${n(s.p99Ms)} / ${n(s.maxMs)}`, ceiling: "-", ratio: "-", target: "-" })),
  },
  {
    name: "rebuild",
    file: "bench/rebuild.ts",
    rows: (r) => [{ benchmark: "rebuild (Run)", measure: `rows/s rebuilding one aggregate over ${n(r.rows)} rows`, value: n(r.rebuildRowsPerSecond), ceiling: `raw LMDB reads ${n(r.rawReadRowsPerSecond)}`, ratio: pct(r.rebuildOverRaw), target: met(r.rebuildOverRaw, 0.3) }],
  },
  {
    name: "reread",
    file: "bench/reread.ts",
    rows: (r) => {
      const during = r.latencyDuringRun as Json;
      const quiet = r.latencyWithoutRun as Json;
      return [
        { benchmark: "reread (Run)", measure: `rows/s re-reading ${n(r.rows)} rows at ${n(r.changesPerSecond)} changes/s`, value: n(r.rereadRowsPerSecond), ceiling: "-", ratio: "-", target: "-" },
        { benchmark: "reread (Run)", measure: "streamed latency p99 during the Run (ms; without a Run)", value: `${n(during.p99Ms)} (${n(quiet.p99Ms)})`, ceiling: "-", ratio: "-", target: `< 250 (${typeof during.p99Ms === "number" && during.p99Ms < 250 ? "met" : "not met"})` },
      ];
    },
  },
  {
    name: "api",
    file: "bench/api.ts",
    rows: (r) => {
      const quiet = r.streamingQuiet as Json;
      const loaded = r.streamingLoaded as Json;
      const max = r.streamingMax as Json;
      const records = n(r.records);
      return [
        { benchmark: "api (daemon process)", measure: `GET /records lookups/s of ${n(r.lookupRateOffered)} offered, ${records} records, ${n(r.changesPerSecondLoaded)} changes/s (p50 / p99 ms)`, value: `${n(r.lookupsPerSecond)} (${n(r.lookupP50Ms)} / ${n(r.lookupP99Ms)})`, ceiling: `closed loop ${n(r.maxLookupsPerSecond)} (p99 ${n(r.maxLookupP99Ms)})`, ratio: "-", target: `≥ 5,000, p99 < 20 (${Number(r.lookupsPerSecond) >= 5000 && Number(r.lookupsSkipped) === 0 && Number(r.lookupP99Ms) < 20 ? "met" : "not met"})` },
        { benchmark: "api (daemon process)", measure: "streaming p99 with those lookups (ms; without; closed loop)", value: `${n(loaded.p99Ms)} (${n(quiet.p99Ms)}; ${n(max.p99Ms)})`, ceiling: "-", ratio: `×${n(r.streamingP99Ratio)}`, target: `≤ ×1.2 (${Number(r.streamingP99Ratio) <= 1.2 ? "met" : "not met"})` },
      ];
    },
  },
  {
    name: "scale",
    file: "bench/scale.ts",
    rows: (r) => {
      const one = (r.workers as Json[])[0]?.perSecond as number | undefined;
      return [
        { benchmark: "scale (relay)", measure: `snapshot events/s published to a 6-partition topic (${n(r.events)} events)`, value: n(r.relayPerSecond), ceiling: "-", ratio: "-", target: "-" },
        ...(r.workers as Json[]).map((w) => ({ benchmark: `scale (${n(w.workers)} worker${w.workers === 1 ? "" : "s"})`, measure: "events/s into committed state and changelog", value: n(w.perSecond), ceiling: "1 worker", ratio: one ? `×${(Number(w.perSecond) / one).toFixed(2)}` : "-", target: "-" })),
        { benchmark: "scale (restore)", measure: `changelog records/s into an empty state (${n(r.restoredRecords)} records)`, value: n(r.restorePerSecond), ceiling: "-", ratio: "-", target: "-" },
      ];
    },
  },
];

function runOne(file: string): Promise<Json> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, "--import", "tsx", file], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) reject(new Error(`${file} exited with ${String(code)}${line ? "" : " without a JSON result line"}`));
      else resolve(JSON.parse(line) as Json);
    });
  });
}

const only = process.env.BENCH_ONLY?.split(",");
const lines: Line[] = [];
for (const bench of BENCHMARKS) {
  if (only && !only.includes(bench.name)) continue;
  process.stderr.write(`\n== ${bench.file}\n`);
  lines.push(...bench.rows(await runOne(bench.file)));
}
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`\nnpm run bench, ${new Date().toISOString().slice(0, 10)}, ${machine}\n`);
console.log("| benchmark | measure | value | ceiling (same run) | ratio | target |");
console.log("|---|---|---|---|---|---|");
for (const l of lines) console.log(`| ${l.benchmark} | ${l.measure} | ${l.value} | ${l.ceiling} | ${l.ratio} | ${l.target} |`);
