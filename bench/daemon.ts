// Benchmark: the daemon as users run it. For each backlog, the same changes are read twice in one run:
// raw pgoutput decoding with pg-logical-replication alone (a slot of its own), and `grouparoo-stream
// run` started as a child process with a config file (built CLI, the launcher's Node flags), timed from
// its start until its slot's confirmed_flush_lsn reaches the backlog's end, which by the
// acknowledgement rule means every change is durably applied. Also: its memory at the end (heap, and
// resident LMDB pages apart), a restart (to its replication stream, and to /readyz), and a group
// added by SIGHUP backfilled.
// BENCH_DAEMON=users10,users0,... picks scenarios; BENCH_DAEMON_ROUNDS (default 3) how many times the
// backlogs of 200,000 changes run (their median is reported, and the cost of groups computed from it);
// BENCH_PROFILE=DIR writes the daemon's CPU profiles there, and prints where its main thread's time
// went (bench/profile.ts's parts, and the top functions by self time); a profiled daemon is slower,
// and its backfill is skipped. The daemon runs with the launcher's Node flags (daemon/node-flags.ts);
// BENCH_SEMI=N with --max-semi-space-size=N instead of the launcher's 32 (the memory it trades for
// speed; README, "Node flags"); BENCH_NODE_FLAGS adds Node flags of its own (space-separated; a V8
// flag given twice takes the last, so --heap-growing-percent=0 there restores V8's own growth).
// BENCH_KEEP=1 keeps each state directory and prints where; BENCH_HEAPSNAPSHOT=MS, with
// BENCH_NODE_FLAGS=--heapsnapshot-signal=SIGUSR2, has the daemon write a heap snapshot into the
// working directory once caught up, and waits MS for it. BENCH_STREAM_SECONDS=N
// then streams 1,000 changes/s for N seconds and measures the memory again (the JSON's `streaming`).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { NODE_FLAGS } from "../daemon/node-flags.js";
import { Store } from "../state/store.js";
import { listRuns, type RunState } from "../streams/runs.js";
import { startPostgres } from "../test/services/postgres.js";
import { freePort } from "../test/services/process.js";
import { rawDecode, sql } from "./common.js";
import { profileParts, profileReport, profileTop, unbundled } from "./profile.js";

// BENCH_CLI: another build's executable (an A/B of two builds with this benchmark's scenarios; the
// backfill step reads the state with this tree's code, so both builds must write the same layout).
const CLI = process.env.BENCH_CLI ?? new URL("../dist/daemon/cli.js", import.meta.url).pathname;
const postgres = process.env.PG_URL ? undefined : await startPostgres({ max_wal_size: "8GB" });
const serverUrl = process.env.PG_URL ?? postgres?.url ?? "";
type Obj = Record<string, unknown>;

interface Scenario {
  name: string;
  /** What the backlog is, for the table. */
  describe: string;
  tables: string[];
  /** The backlog's statements, each its own transaction. */
  backlog: string[];
  changes: number;
  objects: (url: string) => Obj[];
  /** A group added by SIGHUP once caught up, whose backfill is timed. */
  addGroup?: Obj;
  /** The k-th transaction of the light stream after the catch-up (100 changes, BENCH_STREAM_SECONDS). */
  stream: (k: number) => string;
  /** The delivery is timed too: `last`, whether the destination holds the backlog's last export (a primary-key lookup, asked often); `query`: whether it holds all of it (asked once `last` holds). */
  delivered?: { last: string; query: string };
  /** The tables the daemon's publication holds (all of them unless said: a destination's table is not). */
  published?: string[];
}

const app = (url: string, snapshot = "no_data"): Obj => ({ class: "app", id: "shop", type: "postgres", options: { connectionString: url, slot: "daemon_slot", publication: "bench_pub", snapshot } });
const usersObjects = (groups: number) => (url: string): Obj[] => [
  app(url),
  { class: "model", id: "users" },
  { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
  { class: "property", id: "email", type: "email", unique: true, sourceId: "users_table", options: { column: "email" } },
  { class: "property", id: "name", type: "string", sourceId: "users_table", options: { column: "name" } },
  { class: "property", id: "ltv", type: "float", sourceId: "users_table", options: { column: "ltv" } },
  { class: "property", id: "plan", type: "string", sourceId: "users_table", options: { column: "plan" } },
  ...Array.from({ length: groups }, (_, g) => ({
    class: "group",
    id: `g${g}`,
    modelId: "users",
    rules: [
      { propertyId: "ltv", op: "gt", match: g * 10 },
      { propertyId: "plan", op: "ne", match: `p${g}` },
    ],
  })),
];

function usersScenario(name: string, users: number, groups: number, perTransaction: number): Scenario {
  const backlog: string[] = [];
  for (let i = 1; i <= users; i += perTransaction) {
    backlog.push(`INSERT INTO users SELECT g, 'u' || g || '@example.com', 'name' || g, g % 100, 'p' || (g % 10) FROM generate_series(${i}, ${Math.min(users, i + perTransaction - 1)}) g`);
  }
  for (let i = 1; i <= users; i += perTransaction) {
    backlog.push(`UPDATE users SET ltv = ltv + 50, plan = 'p' || ((id + 3) % 10) WHERE id BETWEEN ${i} AND ${Math.min(users, i + perTransaction - 1)}`);
  }
  return {
    name,
    describe: `users table, 5 properties (one unique email), ${groups} two-rule groups; ${users.toLocaleString("en")} inserts, then as many updates, ${perTransaction.toLocaleString("en")} rows per transaction`,
    tables: ["CREATE TABLE users (id int PRIMARY KEY, email text, name text, ltv numeric, plan text)"],
    backlog,
    changes: 2 * users,
    objects: usersObjects(groups),
    stream: (k) => `UPDATE users SET ltv = ltv + 1 WHERE id BETWEEN ${((k * 100) % users) + 1} AND ${((k * 100) % users) + 100}`,
    addGroup: { class: "group", id: "added", modelId: "users", rules: [{ propertyId: "ltv", op: "gt", match: 100 }] },
  };
}

function purchasesScenario(name: string, users: number, purchases: number): Scenario {
  // Users in transactions of up to 100,000 rows, purchases in transactions of 50,000.
  const userRanges = Array.from({ length: Math.ceil(users / 100_000) }, (_, k) => [k * 100_000 + 1, Math.min(users, (k + 1) * 100_000)]);
  return {
    name,
    describe: `${users.toLocaleString("en")} users, then ${purchases.toLocaleString("en")} purchases aggregated into them (count, filtered sum, most recent value), 10 groups on the aggregates`,
    tables: ["CREATE TABLE users (id int PRIMARY KEY, email text)", "CREATE TABLE purchases (id int PRIMARY KEY, user_id int, amount numeric, state text, created_at timestamptz)"],
    backlog: [
      ...userRanges.map(([from, to]) => `INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(${from}, ${to}) g`),
      ...Array.from({ length: purchases / 50_000 }, (_, k) => `INSERT INTO purchases SELECT g, 1 + g % ${users}, g % 97, CASE WHEN g % 5 = 0 THEN 'refunded' ELSE 'paid' END, '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(${k * 50_000 + 1}, ${(k + 1) * 50_000}) g`),
    ],
    changes: users + purchases,
    stream: (k) => `INSERT INTO purchases SELECT ${purchases} + g, 1 + g % ${users}, g % 97, 'paid', now() FROM generate_series(${k * 100 + 1}, ${k * 100 + 100}) g`,
    addGroup: { class: "group", id: "added", modelId: "users", rules: [{ propertyId: "ltv", op: "gt", match: 100 }] },
    objects: (url) => [
      app(url),
      { class: "model", id: "users" },
      { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
      { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "purchases" }, mapping: { user_id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
      { class: "property", id: "email", type: "email", unique: true, sourceId: "users_table", options: { column: "email" } },
      { class: "property", id: "purchase_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
      { class: "property", id: "ltv", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "sum" }, filters: [{ key: "state", op: "eq", match: "paid" }] },
      { class: "property", id: "last_purchase", type: "date", sourceId: "purchases_table", options: { column: "created_at", aggregationMethod: "most recent value", sortColumn: "created_at" } },
      ...Array.from({ length: 10 }, (_, g) => ({
        class: "group",
        id: `g${g}`,
        modelId: "users",
        rules: [
          { propertyId: "ltv", op: "gt", match: g * 20 },
          { propertyId: "purchase_count", op: "gte", match: (g % 4) + 1 },
        ],
      })),
    ],
  };
}

/**
 * 200,000 users inserted (two transactions of 100,000), `users10`'s properties and groups, every record
 * also sent to a postgres-table destination (a table of the same database, so as fast a destination
 * as there is here): the catch-up outruns the delivery, the outbox fills to its bound of 100,000, and
 * the sources wait for it to drain below half, again and again, until the table holds every user.
 */
function usersToTableScenario(): Scenario {
  const users = usersScenario("users10-to-table", 200_000, 10, 100_000);
  return {
    ...users,
    describe: "users table, 5 properties (one unique email), 10 two-rule groups; 200,000 inserts, 100,000 rows per transaction, every record also upserted into a postgres-table destination with its groups",
    tables: [...users.tables, "CREATE TABLE contacts (id int PRIMARY KEY, email text, name text, ltv numeric, plan text, segments text[])"],
    published: ["users"],
    backlog: users.backlog.slice(0, 2),
    changes: 200_000,
    objects: (url) => [
      ...users.objects(url),
      { class: "app", id: "crm", type: "postgres", options: { connectionString: url } },
      { class: "destination", id: "contacts", type: "postgres-table", appId: "crm", modelId: "users", collection: "model", syncMode: "sync", options: { table: "public.contacts", primaryKey: "id", groupsColumn: "segments" }, mapping: { id: "user_id", email: "email", name: "name", ltv: "ltv", plan: "plan" }, destinationGroupMemberships: Object.fromEntries(Array.from({ length: 10 }, (_, g) => [`g${g}`, `g${g}`])) },
    ],
    delivered: { last: "SELECT EXISTS (SELECT 1 FROM contacts WHERE id = 200000) AS done", query: "SELECT count(*) = 200000 AS done FROM contacts c JOIN users u USING (id) WHERE c.ltv = u.ltv AND c.plan = u.plan" },
  };
}

const ALL: Scenario[] = [
  usersScenario("users10", 100_000, 10, 100_000),
  usersScenario("users0", 100_000, 0, 100_000),
  usersScenario("users100", 100_000, 100, 100_000),
  usersScenario("users10-small-tx", 100_000, 10, 10_000),
  usersToTableScenario(),
  purchasesScenario("purchases10", 50_000, 150_000),
  usersScenario("users10-1M", 500_000, 10, 100_000),
  usersScenario("users10-1M-records", 1_000_000, 10, 100_000),
  // The memory target's scale: 1,000,000 records and 3,000,000 purchase rows (4,000,000 changes).
  purchasesScenario("purchases10-3M-rows", 1_000_000, 3_000_000),
];
const picked = process.env.BENCH_DAEMON?.split(",");
const scenarios = picked ? ALL.filter((s) => picked.includes(s.name)) : ALL;
// Backlogs of 200,000 changes run this many times, one scenario after the other in turn, and report
// their median run (by the daemon's rate): one run's rate moves by 10 % from run to run here, and the
// cost of groups is a difference of two rates. Larger backlogs run once.
const ROUNDS = Math.max(1, Number(process.env.BENCH_DAEMON_ROUNDS ?? 3));

/** Starts `run`; with `onLog`, its info lines are read (each message as it is logged), else it logs only warnings. */
function start(config: string, state: string, http: string, profile?: string, onLog?: (message: string) => void): ChildProcess {
  const args = [...NODE_FLAGS.map((flag) => (process.env.BENCH_SEMI && flag.startsWith("--max-semi-space-size=") ? `--max-semi-space-size=${process.env.BENCH_SEMI}` : flag)), ...(process.env.BENCH_NODE_FLAGS?.split(" ").filter(Boolean) ?? []), ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []), CLI, "run", "--config", config, "--state", state, "--http", http];
  const child = spawn(process.execPath, args, { stdio: ["ignore", onLog ? "pipe" : "ignore", "inherit"], env: { ...process.env, LOG_LEVEL: onLog ? "info" : "warn" } });
  if (onLog && child.stdout) createInterface({ input: child.stdout }).on("line", (line) => onLog((JSON.parse(line) as { msg: string }).msg));
  return child;
}

const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", () => resolve())));

/**
 * The resident memory of a process in MiB: all of it, its peak so far (VmHWM), the anonymous part
 * (heaps and the rest), and the resident pages of LMDB's map (the data.mdb mapping in smaps; the rest
 * of the file-backed part is Node's binary and libraries).
 */
function memory(pid: number): { rssMiB: number; peakMiB: number; anonMiB: number; lmdbMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  let lmdbKiB = 0;
  let inLmdb = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inLmdb = line.endsWith("/data.mdb");
    else if (inLmdb && line.startsWith("Rss:")) lmdbKiB += Number(/(\d+)/.exec(line)?.[1] ?? 0);
  }
  return { rssMiB: Math.round(kib("VmRSS") / 1024), peakMiB: Math.round(kib("VmHWM") / 1024), anonMiB: Math.round(kib("RssAnon") / 1024), lmdbMiB: Math.round(lmdbKiB / 1024) };
}

/** The main thread's V8 heap in MiB: used, and committed (what of it is resident, in the anonymous part). */
async function heapMiB(http: string): Promise<{ used: number; total: number }> {
  const text = await (await fetch(`http://${http}/metrics`)).text();
  const mib = (name: string) => Math.round(Number(new RegExp(`^grouparoo_nodejs_heap_size_${name}_bytes (\\S+)`, "m").exec(text)?.[1] ?? 0) / 2 ** 20);
  return { used: mib("used"), total: mib("total") };
}

async function until(what: string, done: () => Promise<boolean>, seconds = 900, everyMs = 25): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

let profiledRuns = 0;

async function run(scenario: Scenario) {
  const db = `bench_daemon_${scenario.name.replace(/[^a-z0-9]/g, "_")}`;
  await sql(serverUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await sql(serverUrl, `CREATE DATABASE ${db}`);
  const url = serverUrl.replace(/\/postgres$/, `/${db}`);
  for (const table of scenario.tables) await sql(url, table);
  await sql(url, `CREATE PUBLICATION bench_pub FOR ${scenario.published ? `TABLE ${scenario.published.join(", ")}` : "ALL TABLES"}`);
  await sql(url, "SELECT pg_create_logical_replication_slot('raw_slot', 'pgoutput')");
  await sql(url, "SELECT pg_create_logical_replication_slot('daemon_slot', 'pgoutput')");
  for (const statement of scenario.backlog) await sql(url, statement);
  const end = String((await sql(url, "SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]?.lsn);

  const rawSeconds = await rawDecode(url, "raw_slot", "bench_pub", scenario.changes);

  const work = mkdtempSync(join(tmpdir(), "bench-daemon-"));
  const config = join(work, "config.json");
  writeFileSync(config, JSON.stringify(scenario.objects(url)));
  const http = `127.0.0.1:${await freePort()}`;
  // Each run's profiles in a directory of their own (pids recycle over a long benchmark).
  const profile = process.env.BENCH_PROFILE ? join(process.env.BENCH_PROFILE, `${scenario.name}-${++profiledRuns}`) : undefined;
  // The polls every 25 ms share one connection (a connection each was a Postgres backend started 40
  // times a second, on the cores the daemon runs on).
  const watch = new pg.Client({ connectionString: url });
  await watch.connect();
  const holds = async (text: string, params: unknown[] = []) => (await watch.query<{ done: boolean }>(text, params)).rows[0]?.done === true;
  const started = performance.now();
  let child = start(config, join(work, "state"), http, profile);
  let daemonSeconds: number;
  let deliveredSeconds: number | undefined;
  try {
    await until("the daemon caught up", () => holds("SELECT confirmed_flush_lsn >= $1::pg_lsn AS done FROM pg_replication_slots WHERE slot_name = 'daemon_slot'", [end]));
    daemonSeconds = (performance.now() - started) / 1000;
    if (scenario.delivered) {
      // The destination's table is asked for the backlog's last export by its primary key every 25 ms
      // (nothing the daemon does: scraping its outbox gauge that often made it count its outbox four
      // times a second, 5 % of its main thread), then checked whole every 100 ms: a batch sent
      // alongside the last one may land after it.
      const { last, query } = scenario.delivered;
      await until("the destination holds the backlog's last export", () => holds(last));
      await until("the destination holds the backlog's end", () => holds(query), 900, 100);
      deliveredSeconds = (performance.now() - started) / 1000;
    }
  } finally {
    await watch.end();
  }
  const mem = memory(child.pid ?? 0);
  const heap = await heapMiB(http);
  // BENCH_STREAM_SECONDS: then a light stream (100 changes every 100 ms) for that long, and the memory
  // again at its end: what the process holds streaming, once the catch-up's burst is behind it.
  let streaming: { seconds: number; rssMiB: number; lmdbMiB: number; heapUsed: number; heapTotal: number } | undefined;
  const streamSeconds = Number(process.env.BENCH_STREAM_SECONDS ?? 0);
  if (streamSeconds > 0) {
    const until = performance.now() + streamSeconds * 1000;
    for (let k = 0; performance.now() < until; k++) {
      const next = performance.now() + 100;
      await sql(url, scenario.stream(k));
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
      if (k % 50 === 49) console.error(`[${scenario.name}] streaming ${Math.round((k + 1) / 10)} s: RSS ${memory(child.pid ?? 0).rssMiB} MiB`);
    }
    const after = memory(child.pid ?? 0);
    const afterHeap = await heapMiB(http);
    if (process.env.BENCH_HEAPSNAPSHOT) {
      child.kill("SIGUSR2");
      await new Promise((r) => setTimeout(r, Number(process.env.BENCH_HEAPSNAPSHOT)));
    }
    streaming = { seconds: streamSeconds, rssMiB: after.rssMiB, lmdbMiB: after.lmdbMiB, heapUsed: afterHeap.used, heapTotal: afterHeap.total };
  }
  if (process.env.BENCH_HEAPSNAPSHOT) {
    child.kill("SIGUSR2");
    await new Promise((r) => setTimeout(r, Number(process.env.BENCH_HEAPSNAPSHOT)));
  }

  // A group added by SIGHUP, backfilled over every record: its Run's own start and end.
  let backfill: { records: number; perSecond: number } | undefined;
  if (scenario.addGroup && !profile) {
    writeFileSync(config, JSON.stringify([...scenario.objects(url), scenario.addGroup]));
    child.kill("SIGHUP");
    let done: RunState | undefined;
    // The rate comes from the Run's own times, so the state is looked at only every 250 ms: opening
    // it from this process 40 times a second took CPU from the daemon on the same two cores.
    await until(
      "the backfill",
      async () => {
        const store = Store.open(join(work, "state"));
        try {
          done = listRuns(store).find((r) => r.kind === "backfill" && r.state === "complete");
          return done !== undefined;
        } finally {
          await store.close();
        }
      },
      900,
      250,
    );
    if (done) backfill = { records: done.processed, perSecond: Math.round((done.processed * 1000) / Math.max(1, (done.finishedAt ?? 0) - (done.startedAt ?? 0))) };
  }

  // A restart: from spawn to the replication stream (the source's `streaming from the replication
  // slot`), and to /readyz 200.
  child.kill("SIGTERM");
  await exited(child);
  // The main thread's profile (thread 0; the process's other threads have their own files).
  const mainProfile = profile && readdirSync(profile).find((f) => f.includes(`.${child.pid}.0.`) && f.endsWith(".cpuprofile"));
  const cpu = profile && mainProfile ? unbundled(JSON.parse(readFileSync(join(profile, mainProfile), "utf8")) as Parameters<typeof unbundled>[0]) : undefined;
  const restartStarted = performance.now();
  let streamingSeconds: number | undefined;
  child = start(config, join(work, "state"), http, undefined, (message) => {
    if (message === "streaming from the replication slot") streamingSeconds ??= (performance.now() - restartStarted) / 1000;
  });
  await until("ready after a restart", async () => (await fetch(`http://${http}/readyz`).then((r) => r.status, () => 0)) === 200, 60);
  const restartSeconds = (performance.now() - restartStarted) / 1000;
  await until("the restart's stream", async () => streamingSeconds !== undefined, 60);
  child.kill("SIGTERM");
  await exited(child);
  const lmdbFileMiB = Math.round(statSync(join(work, "state", "data.mdb")).size / 2 ** 20);
  if (process.env.BENCH_KEEP) console.error(`state kept in ${join(work, "state")}`);
  else rmSync(work, { recursive: true, force: true });
  await sql(serverUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  return {
    scenario: scenario.name,
    describe: scenario.describe,
    changes: scenario.changes,
    rawPerSecond: Math.round(scenario.changes / rawSeconds),
    daemonPerSecond: Math.round(scenario.changes / daemonSeconds),
    daemonToRaw: Number((rawSeconds / daemonSeconds).toFixed(3)),
    ...(deliveredSeconds ? { deliveredPerSecond: Math.round(scenario.changes / deliveredSeconds) } : {}),
    rssMiB: mem.rssMiB,
    /** The highest RSS since the daemon started (VmHWM), the catch-up included. */
    peakRssMiB: mem.peakMiB,
    anonMiB: mem.anonMiB,
    lmdbResidentMiB: mem.lmdbMiB,
    lmdbFileMiB,
    heapUsedMiB: heap.used,
    heapTotalMiB: heap.total,
    restartToReadySeconds: Number(restartSeconds.toFixed(2)),
    restartToStreamSeconds: Number((streamingSeconds ?? 0).toFixed(2)),
    ...(streaming ? { streaming } : {}),
    ...(backfill ? { backfillRecords: backfill.records, backfillRecordsPerSecond: backfill.perSecond } : {}),
    ...(cpu && profile ? { profile: { file: join(profile, mainProfile ?? ""), ...profileParts(cpu), top: profileTop(cpu, 10) } } : {}),
  };
}

type Result = Awaited<ReturnType<typeof run>>;
const runs = new Map<string, Result[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const scenario of scenarios) {
    if (round > 0 && scenario.changes > 200_000) continue;
    const result = await run(scenario);
    runs.set(scenario.name, [...(runs.get(scenario.name) ?? []), result]);
  }
}
const results = scenarios.map((scenario) => {
  const all = runs.get(scenario.name) ?? [];
  const middle = Math.floor((all.length - 1) / 2);
  const median = [...all].sort((a, b) => a.daemonPerSecond - b.daemonPerSecond)[middle] as Result;
  // The delivery's rate is its own median (the round of the median catch-up may not hold it).
  const delivered = all.map((r) => r.deliveredPerSecond).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
  return {
    ...median,
    ...(delivered.length > 0 ? { deliveredPerSecond: delivered[middle] } : {}),
    runs: all.map((r) => ({ rawPerSecond: r.rawPerSecond, daemonPerSecond: r.daemonPerSecond, ...(r.deliveredPerSecond !== undefined ? { deliveredPerSecond: r.deliveredPerSecond } : {}) })),
  };
});
// What groups cost: the rate with 10 and with 100 groups against the same backlog with none (medians).
const rate = (name: string) => results.find((r) => r.scenario === name)?.daemonPerSecond;
const groupCost = Object.fromEntries(
  ["users10", "users100"].flatMap((name) => {
    const none = rate("users0");
    const some = rate(name);
    return none && some ? [[name, Number((1 - some / none).toFixed(3))]] : [];
  }),
);
await postgres?.stop();
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(JSON.stringify({ benchmark: "daemon", machine, rounds: ROUNDS, groupCost, results }));
console.log("| scenario | raw decode (changes/s) | daemon (changes/s) | daemon / raw | RSS (MiB: heap used, LMDB resident) | restart to stream / to ready (s) |");
console.log("|---|---|---|---|---|---|");
for (const r of results) console.log(`| ${r.describe} | ${r.rawPerSecond.toLocaleString("en")} | ${r.daemonPerSecond.toLocaleString("en")} | ${r.daemonToRaw} | ${r.rssMiB} (${r.heapUsedMiB}, ${r.lmdbResidentMiB}) | ${r.restartToStreamSeconds} / ${r.restartToReadySeconds} |`);
for (const [name, cost] of Object.entries(groupCost)) console.log(`groups cost ${name}: ${(cost * 100).toFixed(1)} % of the rate without groups`);
for (const r of results) {
  if (!r.profile) continue;
  console.log(`\n${profileReport(`${r.scenario}'s main thread`, r.profile.file, r.profile)}`);
}
