// Benchmark: GET /api/v1/records lookups against a 1,000,000-record state while the daemon streams
// 1,000 changes/s (issue #16). The daemon runs as a process (`grouparoo-stream run`, from dist/) on a
// real Postgres; a writer updates 10 random users every 10 ms, each carrying its own write time, which
// a group makes exported to a local webhook receiver: streaming latency = receipt - write time, per
// export, exact, counted in the phase its row was written in. After a warm-up, the stream alone (the
// baseline) and the same stream while a load generator (a process of its own, under nice) offers lookups at a fixed rate (open loop, over
// keep-alive connections, by user_id and by email alternately, random users) alternate in rounds;
// then the lookups run as fast as the daemon answers (closed loop). Reported: lookups/s, their p50/p99,
// streaming p99 with and without the lookups, and where the machine's CPU went in each phase.
// BENCH_SECONDS sets the length of the stream alone and of the stream with lookups (default 60 each,
// in rounds of 10 s; a p99 over 15 s rested on the few slow moments that fell in it), BENCH_USERS the
// records, BENCH_LOOKUP_RATE the lookups offered per second, BENCH_CONCURRENCY the closed loop's lookups
// in flight (16), BENCH_API_NICE the daemon's --api-nice, BENCH_PROFILE=DIR its CPU profiles (one per
// thread), BENCH_KEEP=1 keeps its state; PG_URL runs against that Postgres server instead of one of
// its own. The 500 ms after each round's lookups (their last exports drain) count in neither phase.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { NODE_FLAGS } from "../daemon/node-flags.js";
import { startPostgres } from "../test/services/postgres.js";
import { freePort } from "../test/services/process.js";
import { sql } from "./common.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
/** The closed loop's length. */
const MAX_SECONDS = 15;
const USERS = Number(process.env.BENCH_USERS ?? 1_000_000);
const RATE = 1000;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
/** Lookups offered per second while streaming (the target rate). */
const LOOKUP_RATE = Number(process.env.BENCH_LOOKUP_RATE ?? 5000);
/** Lookups before the measured phases, at the offered rate (not measured). */
const WARMUP_SECONDS = 5;
/** The stream alone and with lookups alternate in rounds of 10 s each (BENCH_SECONDS / ROUNDS). */
const ROUNDS = Math.max(1, Math.round(SECONDS / 10));
/** The load generator's nice value (see bench/api-client.mjs). */
const CLIENT_NICE = 10;
/** The daemon's --api-nice (BENCH_API_NICE; the daemon's default, 0, when unset). */
const API_NICE = process.env.BENCH_API_NICE;
const KEY = "bench-api-key-0123456789abcdef";
const CLI = new URL("../dist/daemon/cli.js", import.meta.url).pathname;

/** Milliseconds since the epoch, with a fraction: write times and receipts in this process (whole ms tied half the exports). */
const clock = () => performance.timeOrigin + performance.now();
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
type Phase = "quiet" | "loaded" | "max";
/** The measured phases, by wall clock: an export counts in the phase its row was written in. */
const phases: { phase: Phase; from: number; to: number }[] = [];
const setPhase = (next: Phase | "idle") => {
  const now = clock();
  const open = phases[phases.length - 1];
  if (open && open.to === Infinity) open.to = now;
  if (next !== "idle") phases.push({ phase: next, from: now, to: Infinity });
};
const received: { writtenAt: number; latency: number }[] = [];
const receiverPort = await freePort();
const receiver = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk: Buffer) => (body += chunk.toString()));
  request.on("end", () => {
    const now = clock();
    const { exports } = JSON.parse(body) as { exports: { seq: number; newRecordProperties: { written_at?: number } }[] };
    for (const e of exports) {
      const writtenAt = e.newRecordProperties.written_at;
      if (typeof writtenAt === "number") received.push({ writtenAt, latency: now - writtenAt });
    }
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
const daemon = spawn(process.execPath, [...NODE_FLAGS, ...(process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []), CLI, "run", "--config", config, "--state", join(work, "state"), "--http", http, ...(API_NICE ? ["--api-nice", API_NICE] : [])], { env: { ...process.env, BENCH_API_KEY: KEY, LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "inherit"] });
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
    await writer.query(`UPDATE users SET written_at = $1, score = score + 1 WHERE id = ANY($2::int[])`, [clock(), ids]);
    written += ids.length;
  }
})();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Where the machine's CPU goes during a phase (Linux /proc): the machine as a whole, and the busiest
// threads of the daemon and of this process (the receiver, the writer), and the load generator's process.
const TICK_MS = 10; // USER_HZ = 100 on Linux
const machineTicks = () => {
  const [, ...fields] = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/);
  const n = fields.map(Number);
  return { busy: n.reduce((a, b) => a + b, 0) - (n[3] ?? 0) - (n[4] ?? 0), all: n.reduce((a, b) => a + b, 0) };
};
const threadTicks = (pid: number) => {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(tid, Number(f[11]) + Number(f[12]));
    }
  } catch {
    // Not Linux, or the process is gone: no thread figures.
  }
  return out;
};
const cpuSnapshot = () => ({ at: performance.now(), machine: machineTicks(), daemon: threadTicks(daemon.pid ?? 0), bench: threadTicks(process.pid), client: threadTicks(loadGenerator.pid ?? 0) });
type CpuSnapshot = ReturnType<typeof cpuSnapshot>;
/** CPU use between two snapshots, in cores: the machine, and the top threads of the daemon and of the benchmark. */
const cpuBetween = (a: CpuSnapshot, b: CpuSnapshot) => {
  const seconds = (b.at - a.at) / 1000;
  const cores = (x: Map<string, number>, y: Map<string, number>, tid: string) => round((((y.get(tid) ?? 0) - (x.get(tid) ?? 0)) * TICK_MS) / 1000 / seconds, 2);
  const others = (x: Map<string, number>, y: Map<string, number>, main: string) =>
    [...y.keys()].filter((tid) => tid !== main).map((tid) => cores(x, y, tid)).sort((p, q) => q - p).slice(0, 2);
  const daemonMain = String(daemon.pid);
  const benchMain = String(process.pid);
  return {
    machineCores: round(((b.machine.busy - a.machine.busy) / (b.machine.all - a.machine.all)) * cpus().length, 2),
    daemonMainThread: cores(a.daemon, b.daemon, daemonMain),
    daemonOtherThreads: others(a.daemon, b.daemon, daemonMain),
    benchMainThread: cores(a.bench, b.bench, benchMain),
    benchOtherThreads: others(a.bench, b.bench, benchMain),
    loadGenerator: round([...b.client.keys()].reduce((total, tid) => total + cores(a.client, b.client, tid), 0), 2),
  };
};
// The lookups, from a process of their own over keep-alive connections (bench/api-client.mjs), started
// under `nice` so that every thread of it (V8's helpers too) runs below the daemon and the webhook
// receiver: it stands for clients on other machines. Offered at a fixed rate (open loop: each
// request's latency counts from when it was due, so a daemon that falls behind is not excused), then as
// fast as the daemon answers (closed loop, CONCURRENCY in flight): its ceiling.
type Load = { times: number[]; statuses: Record<string, number>; skipped: number; seconds: number };
const loadGenerator = spawn("nice", ["-n", String(CLIENT_NICE), process.execPath, new URL("./api-client.mjs", import.meta.url).pathname], {
  env: { ...process.env, BENCH_CLIENT: JSON.stringify({ origin: `http://${http}`, key: KEY, users: USERS, concurrency: CONCURRENCY }) },
  stdio: ["ignore", "ignore", "inherit", "ipc"],
});
const clientExited = new Promise<void>((resolve) => loadGenerator.once("exit", () => resolve()));
const lookups = (rate: number, seconds = SECONDS): Promise<Load> =>
  new Promise((resolve, reject) => {
    const exited = (code: number | null) => reject(new Error(`the load generator exited (code ${code})`));
    loadGenerator.once("exit", exited);
    loadGenerator.once("message", (load) => {
      loadGenerator.off("exit", exited);
      resolve(load as Load);
    });
    loadGenerator.send({ seconds, rate });
  });
// Warm-up, not measured: the stream settles; the daemon's API thread and the load generator compile
// their hot paths and open their connections, as a daemon that has served lookups for a while would have.
await sleep(3000);
await lookups(LOOKUP_RATE, WARMUP_SECONDS);
await sleep(1000);
// The stream alone and the stream with lookups offered at LOOKUP_RATE, interleaved in ROUNDS rounds
// (the disk's and the scheduler's slow moments fall on both alike, not on whichever phase they hit).
const sum = (a: Record<string, number>, b: Record<string, number>) => {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
  return a;
};
const cpuSum: Record<"quiet" | "loaded", ReturnType<typeof cpuBetween>[]> = { quiet: [], loaded: [] };
const writtenIn = { quiet: 0, loaded: 0 };
const offered: Load = { times: [], statuses: {}, skipped: 0, seconds: 0 };
const slice = SECONDS / ROUNDS;
for (let round = 0; round < ROUNDS; round += 1) {
  setPhase("quiet");
  let from = written;
  let cpuAt = cpuSnapshot();
  await sleep(slice * 1000);
  cpuSum.quiet.push(cpuBetween(cpuAt, cpuSnapshot()));
  writtenIn.quiet += written - from;
  setPhase("loaded");
  from = written;
  cpuAt = cpuSnapshot();
  const load = await lookups(LOOKUP_RATE, slice);
  cpuSum.loaded.push(cpuBetween(cpuAt, cpuSnapshot()));
  writtenIn.loaded += written - from;
  for (const t of load.times) offered.times.push(t);
  sum(offered.statuses, load.statuses);
  offered.skipped += load.skipped;
  offered.seconds += load.seconds;
  setPhase("idle");
  await sleep(500); // the last lookups' exports drain before the next quiet slice
}
const quietRate = writtenIn.quiet / SECONDS;
const loadedRate = writtenIn.loaded / SECONDS;
const load1 = loadavg()[0] ?? 0;
/** The mean of a phase's per-round CPU figures. */
const meanCpu = (list: ReturnType<typeof cpuBetween>[]) => {
  const mean = (f: (c: ReturnType<typeof cpuBetween>) => number) => round(list.reduce((t, c) => t + f(c), 0) / list.length, 2);
  return { machineCores: mean((c) => c.machineCores), daemonMainThread: mean((c) => c.daemonMainThread), daemonOtherThreads: [0, 1].map((i) => mean((c) => c.daemonOtherThreads[i] ?? 0)), benchMainThread: mean((c) => c.benchMainThread), benchOtherThreads: [0, 1].map((i) => mean((c) => c.benchOtherThreads[i] ?? 0)), loadGenerator: mean((c) => c.loadGenerator) };
};
const quietCpu = meanCpu(cpuSum.quiet);
const loadedCpu = meanCpu(cpuSum.loaded);
await sleep(1000);
// Then as fast as the daemon answers (closed loop, CONCURRENCY in flight): its ceiling.
setPhase("max");
const cpuAt = cpuSnapshot();
const ceiling = await lookups(0, MAX_SECONDS);
const maxCpu = cpuBetween(cpuAt, cpuSnapshot());
loadGenerator.disconnect();
await clientExited;
setPhase("idle");
writing = false;
await writerDone;
await writer.end();

daemon.kill("SIGTERM");
await new Promise((resolve) => daemon.once("exit", resolve));
receiver.close();
// BENCH_KEEP=1 keeps the daemon's state (and its config) for a look afterwards; the path is logged.
if (process.env.BENCH_KEEP) log(`state kept in ${work}`);
else rmSync(work, { recursive: true, force: true });
await sql(serverUrl, `DROP DATABASE ${name} WITH (FORCE)`).catch(() => undefined);
await postgres?.stop();

const sorted = (values: number[]) => values.sort((a, b) => a - b);
const times = sorted(offered.times);
const maxTimes = sorted(ceiling.times);
const latencies: Record<Phase, number[]> = { quiet: [], loaded: [], max: [] };
for (const { writtenAt, latency } of received) {
  const during = phases.find((p) => writtenAt >= p.from && writtenAt < p.to);
  if (during) latencies[during.phase].push(latency);
}
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
  /**
   * Lookups answered 200 per second of the phases they were offered in: the offered rate exactly when
   * every one was answered (open loop: one answered late shows in the p99, not here).
   */
  lookupsPerSecond: Math.round((offered.statuses["200"] ?? 0) / SECONDS),
  lookupsSkipped: offered.skipped,
  lookupStatuses: offered.statuses,
  lookupP50Ms: round(percentile(times, 50), 2),
  lookupP99Ms: round(percentile(times, 99), 2),
  /** Answered 200 per second (the p99 below is over every answer, errors too). */
  maxLookupsPerSecond: Math.round((ceiling.statuses["200"] ?? 0) / ceiling.seconds),
  maxLookupStatuses: ceiling.statuses,
  maxLookupP99Ms: round(percentile(maxTimes, 99), 2),
  maxConcurrency: CONCURRENCY,
  apiNice: Number(API_NICE ?? 0),
  changesPerSecondQuiet: Math.round(quietRate),
  changesPerSecondLoaded: Math.round(loadedRate),
  streamingQuiet: { exports: quiet.length, p50Ms: round(percentile(quiet, 50)), p99Ms: round(percentile(quiet, 99)) },
  streamingLoaded: { exports: loaded.length, p50Ms: round(percentile(loaded, 50)), p99Ms: round(percentile(loaded, 99)) },
  streamingMax: { exports: max.length, p50Ms: round(percentile(max, 50)), p99Ms: round(percentile(max, 99)) },
  streamingP99Ratio: round(percentile(loaded, 99) / percentile(quiet, 99), 2),
  /** Cores busy per phase: the machine, the daemon's three busiest threads, this process's (the receiver, the writer), the load generator's process. */
  cpu: { quiet: quietCpu, loaded: loadedCpu, max: maxCpu },
};
console.log(JSON.stringify(result));
console.log(
  `${result.lookupsPerSecond} lookups/s of ${LOOKUP_RATE} offered (p50 ${result.lookupP50Ms} ms, p99 ${result.lookupP99Ms} ms) against ${USERS.toLocaleString("en")} records at ${result.changesPerSecondLoaded} changes/s; streaming p99 ${result.streamingLoaded.p99Ms} ms with them, ${result.streamingQuiet.p99Ms} ms without (×${result.streamingP99Ratio}); at most ${result.maxLookupsPerSecond} lookups/s (p99 ${result.maxLookupP99Ms} ms, streaming p99 ${result.streamingMax.p99Ms} ms); load average ${result.loadAverage1m}`,
);
