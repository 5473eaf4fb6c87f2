// Benchmark: GET /api/v1/records lookups against a 1,000,000-record state while the daemon streams
// 1,000 changes/s (issue #16). The daemon runs as a process (`grouparoo-stream run`, from dist/) on a
// real Postgres; a writer updates 10 random users every 10 ms, each carrying its own write time, which
// a group makes exported to a local webhook receiver: streaming latency = receipt - write time, per
// export, exact. First the stream alone (the baseline), then the same stream while a worker thread
// looks records up over keep-alive connections (by user_id and by email, alternately, random users)
// as fast as the daemon answers. Reported: lookups/s, their p50/p99, and streaming p99 with and
// without the lookups. BENCH_SECONDS sets each phase's length (default 15), BENCH_USERS the records.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import pg from "pg";
import { startPostgres } from "../test/services/postgres.js";
import { freePort } from "../test/services/process.js";
import { sql } from "./common.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const USERS = Number(process.env.BENCH_USERS ?? 1_000_000);
const RATE = 1000;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
/** Lookups offered per second while streaming (the target rate). */
const LOOKUP_RATE = Number(process.env.BENCH_LOOKUP_RATE ?? 5000);
const KEY = "bench-api-key-0123456789abcdef";
const CLI = new URL("../dist/daemon/cli.js", import.meta.url).pathname;

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const log = (message: string) => process.stderr.write(`[api bench] ${message}\n`);

const postgres = process.env.PG_URL ? undefined : await startPostgres({ fsync: "on", synchronous_commit: "on" });
const serverUrl = process.env.PG_URL ?? postgres?.url ?? "";
const name = `bench_api_${process.pid}`;
await sql(serverUrl, `CREATE DATABASE ${name}`);
const url = serverUrl.replace(/\/postgres$/, `/${name}`);
await sql(url, `CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, score int NOT NULL, written_at float8)`);
let began = performance.now();
for (let i = 1; i <= USERS; i += 100_000) await sql(url, `INSERT INTO users SELECT g, 'user' || g || '@example.com', g % 100, NULL FROM generate_series(${i}, ${Math.min(USERS, i + 99_999)}) g`);
log(`${USERS.toLocaleString("en")} users inserted in ${round((performance.now() - began) / 1000)} s`);

// The receiver: each export's latency from its row's write time.
let phase: "idle" | "quiet" | "loaded" | "max" = "idle";
const latencies: Record<"quiet" | "loaded" | "max", number[]> = { quiet: [], loaded: [], max: [] };
const receiverPort = await freePort();
const receiver = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk: Buffer) => (body += chunk.toString()));
  request.on("end", () => {
    const now = Date.now();
    const { exports } = JSON.parse(body) as { exports: { seq: number; newRecordProperties: { written_at?: number } }[] };
    if (phase !== "idle") for (const e of exports) if (typeof e.newRecordProperties.written_at === "number") latencies[phase].push(now - e.newRecordProperties.written_at);
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ results: exports.map((e) => ({ seq: e.seq, status: "ok" })) }));
  });
});
await new Promise<void>((resolve) => receiver.listen(receiverPort, "127.0.0.1", () => resolve()));

const work = mkdtempSync(join(tmpdir(), "bench-api-"));
const config = join(work, "config.yml");
writeFileSync(
  config,
  `
- { class: app, id: shop, type: postgres, options: { connectionString: "${url}", slot: ${name}, publication: ${name} } }
- { class: app, id: hooks, type: webhook, options: { url: "http://127.0.0.1:${receiverPort}/hooks" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, unique: true, sourceId: users_table, options: { column: email } }
- { class: property, id: score, type: integer, sourceId: users_table, options: { column: score } }
- { class: property, id: written_at, type: float, sourceId: users_table, options: { column: written_at } }
- { class: group, id: written, modelId: users, rules: [{ propertyId: written_at, op: exists }] }
- { class: group, id: high, modelId: users, rules: [{ propertyId: score, op: gte, match: 90 }] }
- { class: destination, id: hook, type: webhook, appId: hooks, modelId: users, collection: group, groupId: written, syncMode: sync, options: {}, mapping: { id: user_id, written_at: written_at } }
- { class: apiKey, id: bench, type: specific, apiKey: "\${BENCH_API_KEY}", permissions: [{ topic: record, read: true, write: false }, { topic: status, read: true, write: false }] }
`,
);
const http = `127.0.0.1:${await freePort()}`;
// The launcher's Node flags (the CLI's shebang); BENCH_PROFILE=DIR writes the daemon's CPU profile.
const daemon = spawn(process.execPath, ["--max-semi-space-size=64", ...(process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []), CLI, "run", "--config", config, "--state", join(work, "state"), "--http", http], { env: { ...process.env, BENCH_API_KEY: KEY, LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "inherit"] });
const status = async (): Promise<{ ready: boolean; records: { count: number }[] } | undefined> => {
  try {
    const response = await fetch(`http://${http}/api/v1/status`, { headers: { authorization: `Bearer ${KEY}` } });
    return response.ok ? ((await response.json()) as { ready: boolean; records: { count: number }[] }) : undefined;
  } catch {
    return undefined;
  }
};
began = performance.now();
for (;;) {
  const s = await status();
  if (s?.ready && s.records[0]?.count === USERS) break;
  await new Promise((r) => setTimeout(r, 1000));
}
const snapshotSeconds = round((performance.now() - began) / 1000);
log(`the daemon holds ${USERS.toLocaleString("en")} records after ${snapshotSeconds} s`);

// The writer: 10 random users every 10 ms, each stamped with its write time.
const writer = new pg.Client({ connectionString: url });
await writer.connect();
let writing = true;
let written = 0;
const writerDone = (async () => {
  const started = Date.now();
  for (let tick = 0; writing; tick += 1) {
    const wait = started + tick * 10 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const ids = Array.from({ length: RATE / 100 }, () => 1 + Math.floor(Math.random() * USERS));
    await writer.query(`UPDATE users SET written_at = $1, score = score + 1 WHERE id = ANY($2::int[])`, [Date.now(), ids]);
    written += ids.length;
  }
})();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(3000); // warm-up: the stream settles
phase = "quiet";
let phaseStart = written;
await sleep(SECONDS * 1000);
const quietRate = (written - phaseStart) / SECONDS;
phase = "idle";
await sleep(1000);

// The lookups, from a worker thread over keep-alive connections. Offered at a fixed rate (open loop:
// each request's latency counts from when it was due, so a daemon that falls behind is not excused),
// then as fast as the daemon answers (closed loop, CONCURRENCY in flight): its ceiling.
const workerCode = `
const { parentPort, workerData } = require("node:worker_threads");
const http = require("node:http");
const { host, port, key, users, seconds, rate, concurrency } = workerData;
// The load generator stands for clients on other machines: on this one it runs below the daemon's
// threads and the webhook receiver (nice 10, as the daemon's API thread), so it does not starve the
// stream whose latency is measured. Linux: setpriority on the thread's own id.
try {
  const tid = Number(require("node:fs").readlinkSync("/proc/thread-self").split("/").pop());
  require("node:os").setPriority(tid, 10);
} catch {}
const agent = new http.Agent({ keepAlive: true, maxSockets: rate ? 256 : concurrency });
const times = [];
const statuses = {};
let n = 0;
let inFlight = 0;
let skipped = 0;
function one(due) {
  inFlight += 1;
  return new Promise((resolve) => {
    const id = 1 + Math.floor(Math.random() * users);
    const path = (n++ % 2 === 0) ? "/api/v1/records/users?user_id=" + id : "/api/v1/records/users?email=user" + id + "%40example.com";
    const request = http.request({ host, port, path, agent, headers: { authorization: "Bearer " + key } }, (response) => {
      response.resume();
      response.on("end", () => {
        inFlight -= 1;
        times.push(performance.now() - due);
        statuses[response.statusCode] = (statuses[response.statusCode] || 0) + 1;
        resolve();
      });
    });
    request.on("error", () => { inFlight -= 1; statuses.error = (statuses.error || 0) + 1; resolve(); });
    request.end();
  });
}
const started = performance.now();
const deadline = started + seconds * 1000;
const finish = () => { agent.destroy(); parentPort.postMessage({ times, statuses, skipped, seconds: (performance.now() - started) / 1000 }); };
if (rate) {
  const pending = [];
  let sent = 0;
  const tick = () => {
    const now = performance.now();
    const due = Math.min(Math.floor(((now - started) / 1000) * rate), seconds * rate);
    for (; sent < due; sent += 1) {
      const at = started + (sent * 1000) / rate;
      if (inFlight >= 256) { skipped += 1; continue; }
      pending.push(one(at));
    }
    if (now < deadline) setTimeout(tick, 1);
    else Promise.all(pending).then(finish);
  };
  tick();
} else {
  const loop = async () => { while (performance.now() < deadline) await one(performance.now()); };
  Promise.all(Array.from({ length: concurrency }, loop)).then(finish);
}
`;
const [host, port] = http.split(":") as [string, string];
type Load = { times: number[]; statuses: Record<string, number>; skipped: number; seconds: number };
const lookups = (rate: number): Promise<Load> =>
  new Promise((resolve, reject) => {
    const worker = new Worker(workerCode, { eval: true, workerData: { host, port: Number(port), key: KEY, users: USERS, seconds: SECONDS, rate, concurrency: CONCURRENCY } });
    worker.once("message", resolve);
    worker.once("error", reject);
  });
phase = "loaded";
phaseStart = written;
const offered = await lookups(LOOKUP_RATE);
const loadedRate = (written - phaseStart) / SECONDS;
phase = "idle";
const load1 = loadavg()[0] ?? 0;
await sleep(1000);
phase = "max";
const ceiling = await lookups(0);
phase = "idle";
writing = false;
await writerDone;
await writer.end();

daemon.kill("SIGTERM");
await new Promise((resolve) => daemon.once("exit", resolve));
receiver.close();
rmSync(work, { recursive: true, force: true });
await sql(serverUrl, `DROP DATABASE ${name} WITH (FORCE)`).catch(() => undefined);
await postgres?.stop();

const sorted = (values: number[]) => values.sort((a, b) => a - b);
const times = sorted(offered.times);
const maxTimes = sorted(ceiling.times);
const quiet = sorted(latencies.quiet);
const loaded = sorted(latencies.loaded);
const max = sorted(latencies.max);
const result = {
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  loadAverage1m: round(load1, 2),
  records: USERS,
  snapshotSeconds,
  seconds: SECONDS,
  lookupRateOffered: LOOKUP_RATE,
  lookups: times.length,
  lookupsPerSecond: Math.round(times.length / offered.seconds),
  lookupsSkipped: offered.skipped,
  lookupStatuses: offered.statuses,
  lookupP50Ms: round(percentile(times, 50), 2),
  lookupP99Ms: round(percentile(times, 99), 2),
  maxLookupsPerSecond: Math.round(maxTimes.length / ceiling.seconds),
  maxLookupP99Ms: round(percentile(maxTimes, 99), 2),
  maxConcurrency: CONCURRENCY,
  changesPerSecondQuiet: Math.round(quietRate),
  changesPerSecondLoaded: Math.round(loadedRate),
  streamingQuiet: { exports: quiet.length, p50Ms: percentile(quiet, 50), p99Ms: percentile(quiet, 99) },
  streamingLoaded: { exports: loaded.length, p50Ms: percentile(loaded, 50), p99Ms: percentile(loaded, 99) },
  streamingMax: { exports: max.length, p50Ms: percentile(max, 50), p99Ms: percentile(max, 99) },
  streamingP99Ratio: round(percentile(loaded, 99) / percentile(quiet, 99), 2),
};
console.log(JSON.stringify(result));
console.log(
  `${result.lookupsPerSecond} lookups/s of ${LOOKUP_RATE} offered (p50 ${result.lookupP50Ms} ms, p99 ${result.lookupP99Ms} ms) against ${USERS.toLocaleString("en")} records at ${result.changesPerSecondLoaded} changes/s; streaming p99 ${result.streamingLoaded.p99Ms} ms with them, ${result.streamingQuiet.p99Ms} ms without (×${result.streamingP99Ratio}); at most ${result.maxLookupsPerSecond} lookups/s (p99 ${result.maxLookupP99Ms} ms, streaming p99 ${result.streamingMax.p99Ms} ms); load average ${result.loadAverage1m}`,
);
