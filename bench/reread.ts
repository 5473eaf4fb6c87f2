// Benchmark: re-reading a 1,000,000-row table (a property added on its primary source, issue #11) while
// the source takes 1,000 changes/s: the rows/s of the re-read, and the commit-to-acknowledgement latency
// of the streamed changes' exports during it (p50, p99, max), against the same latency with no Run. The
// daemon runs in this process (daemon/daemon.ts, the code `run` runs) against a durable Postgres and a
// local webhook receiver.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { Daemon } from "../daemon/daemon.js";
import { startPostgres } from "../test/services/postgres.js";
import { freePort } from "../test/services/process.js";
import { sql } from "./common.js";

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RATE = 1000;
const postgres = process.env.PG_URL ? undefined : await startPostgres({ fsync: "on", synchronous_commit: "on", full_page_writes: "on" });
const serverUrl = process.env.PG_URL ?? postgres?.url ?? "";
const name = "bench_reread";
await sql(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
await sql(serverUrl, `CREATE DATABASE ${name}`);
const url = serverUrl.replace(/\/postgres$/, `/${name}`);
await sql(url, `CREATE TABLE users (id int PRIMARY KEY, email text, name text)`);
await sql(url, `INSERT INTO users SELECT g, 'u' || g || '@example.com', 'n' || g FROM generate_series(1, ${ROWS}) g`);

// The receiver: when each export arrived, and when its change was committed.
const arrivals: { at: number; commitTime: number }[] = [];
const port = await freePort();
const receiver = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk: Buffer) => (body += chunk.toString()));
  request.on("end", () => {
    const now = Date.now();
    for (const e of (JSON.parse(body) as { exports: { commitTime: number }[] }).exports) arrivals.push({ at: now, commitTime: e.commitTime });
    response.writeHead(200, { "content-type": "application/json" });
    response.end("{}");
  });
});
await new Promise<void>((resolve) => receiver.listen(port, "127.0.0.1", () => resolve()));

const config = (withName: boolean) => [
  { class: "app", id: "shop", type: "postgres", options: { connectionString: url, slot: name, publication: name } },
  { class: "app", id: "hooks", type: "webhook", options: { url: `http://127.0.0.1:${port}/hooks` } },
  { class: "model", id: "users" },
  { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
  { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
  ...(withName ? [{ class: "property", id: "name", type: "string", sourceId: "users_table", options: { column: "name" } }] : []),
  // Only the streamed users are exported: the latency is theirs alone.
  { class: "group", id: "streamed", modelId: "users", rules: [{ propertyId: "email", op: "like", match: "%@streamed.example" }] },
  { class: "destination", id: "crm", type: "webhook", appId: "hooks", modelId: "users", collection: "group", groupId: "streamed", syncMode: "sync", options: {}, mapping: { id: "user_id", email: "email" } },
];

const work = mkdtempSync(join(tmpdir(), "bench-reread-"));
const file = join(work, "config.json");
writeFileSync(file, JSON.stringify(config(false)));
const daemon = await Daemon.start({ config: file, state: join(work, "state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: process.env.BENCH_LOG_LEVEL ?? "silent" }));
if (typeof daemon === "number") throw new Error(`the daemon did not start (${daemon})`);
const wait = async (what: string, done: () => boolean, seconds = 600) => {
  const deadline = Date.now() + seconds * 1000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
await wait("the initial snapshot", () => daemon.state.countOf("records", "users") === ROWS && (daemon.runs?.pending().length ?? 1) === 0);

// 1,000 changes/s: every 10 ms a transaction inserting 10 users the destination receives.
const writer = new pg.Client({ connectionString: url });
await writer.connect();
let next = ROWS + 1;
let writing = true;
const load = (async () => {
  const started = Date.now();
  for (let tick = 0; writing; tick += 1) {
    const due = started + tick * 10;
    const delay = due - Date.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    await writer.query(`INSERT INTO users SELECT g, 'w' || g || '@streamed.example', 'w' FROM generate_series($1::int, $2::int) g`, [next, next + RATE / 100 - 1]);
    next += RATE / 100;
  }
})();
const window = async (seconds: number) => {
  const from = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return { from, to: Date.now() };
};
const latencies = (from: number, to: number) =>
  arrivals
    .filter((a) => a.commitTime >= from && a.commitTime <= to)
    .map((a) => a.at - a.commitTime)
    .sort((a, b) => a - b);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

// Streaming alone first, then the re-read Run under the same load.
const quiet = await window(10);
writeFileSync(file, JSON.stringify(config(true)));
const runStarted = Date.now();
await daemon.reload("bench");
await wait("the re-read Run", () => (daemon.runs?.pending().length ?? 1) === 0);
const runEnded = Date.now();
writing = false;
await load;
await writer.end();
const written = next - ROWS - 1;
await wait("every streamed export delivered", () => arrivals.length >= written, 120);
const stats = (sorted: number[]) => ({ exports: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1) });
const sample = daemon.state.getRecord("users", String(ROWS))?.values.name;
await daemon.drain("SIGTERM");
await daemon.finished;
receiver.close();
rmSync(work, { recursive: true, force: true });
await sql(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
await postgres?.stop();
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(
  JSON.stringify({
    benchmark: "reread",
    machine,
    rows: ROWS,
    changesPerSecond: RATE,
    rereadSeconds: (runEnded - runStarted) / 1000,
    rereadRowsPerSecond: Math.round(ROWS / ((runEnded - runStarted) / 1000)),
    latencyWithoutRun: stats(latencies(quiet.from, quiet.to)),
    latencyDuringRun: stats(latencies(runStarted, runEnded)),
    sampleName: sample,
  }),
);
