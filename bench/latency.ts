// Benchmark: commit-to-acknowledgement latency (the source's commit time to the destination's
// acknowledgement of the export) from Postgres through postgres-cdc, the core and the outbox to a
// webhook (a local HTTP server) and to a postgres-table destination, at 1,000 and 5,000 changes/s.
// Everything runs in this process except Postgres; latencies are exact per export, not bucketed.
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { postgresCdcSource } from "../connectors/postgres/cdc/index.js";
import { postgresTableDestination } from "../connectors/postgres/table.js";
import type { DestinationComponent } from "../connectors/types.js";
import { webhookDestination } from "../connectors/webhook/webhook.js";
import { validateObjects } from "../daemon/config/validate.js";
import { Store, type OutboxEntry } from "../state/store.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery } from "../streams/delivery.js";
import { compileDomain } from "../core/domain.js";
import { flowIntoState } from "../streams/flow.js";
import { startPostgres } from "../test/services/postgres.js";
import { startReceiver } from "../test/helpers/remote.js";
import { sql } from "./common.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// A durable cluster: with synchronous_commit off, WAL (and so logical decoding) waits for the WAL writer.
const postgres = process.env.PG_URL ? undefined : await startPostgres({ fsync: "on", synchronous_commit: "on", full_page_writes: "on" });
const serverUrl = process.env.PG_URL ?? postgres?.url ?? "";
const receiver = await startReceiver();
const silent = pino({ level: "silent" });

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function scenario(destinationType: "webhook" | "postgres-table", rate: number) {
  const name = `lat_${destinationType.replace("-", "_")}_${rate}`;
  await sql(serverUrl, `CREATE DATABASE ${name}`);
  const url = serverUrl.replace(/\/postgres$/, `/${name}`);
  await sql(url, `CREATE TABLE users (id int PRIMARY KEY, email text)`);
  await sql(url, `CREATE TABLE contacts (id int PRIMARY KEY, email text)`);
  receiver.records.clear();
  const destinationApp = destinationType === "webhook" ? { class: "app", id: "out", type: "webhook", options: { url: receiver.url } } : { class: "app", id: "out", type: "postgres", options: { connectionString: url } };
  const options = destinationType === "webhook" ? {} : { table: "contacts", primaryKey: "id" };
  const result = validateObjects(
    [
      { class: "app", id: "shop", type: "postgres", options: { connectionString: url, snapshot: "no_data", slot: name, publication: name } },
      destinationApp,
      { class: "model", id: "users" },
      { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
      { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
      { class: "group", id: "example", modelId: "users", rules: [{ propertyId: "email", op: "like", match: "%@example.com" }] },
      { class: "destination", id: "d", type: destinationType, appId: "out", modelId: "users", collection: "model", syncMode: "sync", options, mapping: { id: "user_id", email: "email" } },
    ].map((value, index) => ({ file: "bench", index, value })),
  );
  if (!result.config) throw new Error(JSON.stringify(result.issues));
  const config = result.config;
  const domain = compileDomain(config);
  const dir = mkdtempSync(join(tmpdir(), "bench-latency-"));
  const store = Store.open(dir);
  const [shop, out] = config.apps;
  const destination = config.destinations[0];
  if (!shop || !out || !destination) throw new Error("config");
  const source = postgresCdcSource.create(shop, config.sources, { logger: silent, positions: new Map() });
  const plugin: DestinationComponent = destinationType === "webhook" ? webhookDestination : postgresTableDestination;
  const connector = plugin.create(destination, out, { logger: silent, fieldTypes: { id: "integer", email: "email" } });
  const latencies: number[] = [];
  const delivery = new Delivery<OutboxEntry>(
    connector,
    store.outboxFor("d"),
    {
      completed: (outcomes) => {
        const now = Date.now();
        for (const o of outcomes) if (o.status === "ok") latencies.push(now - o.entry.commitTime);
      },
      failed: (error) => console.error(error),
    },
    DEFAULT_DELIVERY_OPTIONS,
  );
  const { pipeline, done } = flowIntoState([source], store, domain, {
    committed: (batch) => {
      if ((batch.result?.exports ?? 0) > 0) delivery.wake();
    },
    failed: (error) => console.error(error),
  });
  delivery.start();
  while (!source.ready()) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));

  // The load: every 10 ms one transaction inserting rate/100 rows.
  const writer = new pg.Client({ connectionString: url });
  await writer.connect();
  const perTick = rate / 100;
  const started = Date.now();
  let next = 1;
  for (let tick = 0; tick < SECONDS * 100; tick += 1) {
    const due = started + tick * 10;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await writer.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series($1::int, $2::int) g`, [next, next + perTick - 1]);
    next += perTick;
  }
  const achieved = (next - 1) / ((Date.now() - started) / 1000);
  await writer.end();
  const total = next - 1;
  while (latencies.length < total) await new Promise((r) => setTimeout(r, 50));
  pipeline.drain();
  await source.stop();
  await done;
  await delivery.stop();
  await connector.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  await sql(serverUrl, `DROP DATABASE ${name} WITH (FORCE)`).catch(() => undefined);
  latencies.sort((a, b) => a - b);
  return { destination: destinationType, targetRate: rate, achievedRate: Math.round(achieved), exports: latencies.length, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: latencies.at(-1) };
}

const results = [];
for (const destination of ["webhook", "postgres-table"] as const) for (const rate of [1000, 5000]) results.push(await scenario(destination, rate));
await receiver.close();
await postgres?.stop();
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(JSON.stringify({ machine, seconds: SECONDS, results }));
for (const r of results) console.log(`${r.destination} at ${r.targetRate}/s (achieved ${r.achievedRate}/s): p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms over ${r.exports} exports`);
