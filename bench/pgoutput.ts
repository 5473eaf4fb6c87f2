// Benchmark: the same backlog of Postgres changes read two ways in one run: raw pgoutput decoding
// with pg-logical-replication alone (messages counted, nothing applied), and end to end through the
// postgres-cdc source into committed LMDB state (records + groups). Uses PG_URL or starts Postgres.
import { cpus, totalmem } from "node:os";
import { pino } from "pino";
import { postgresCdcSource } from "../connectors/postgres/cdc/index.js";
import { validateObjects } from "../daemon/config/validate.js";
import { compileDomain } from "../core/domain.js";
import { rawDecode, readIntoState, sql } from "./common.js";
import { startPostgres } from "../test/services/postgres.js";

const CHANGES = Number(process.env.BENCH_PG_CHANGES ?? 1_000_000);
const postgres = process.env.PG_URL ? undefined : await startPostgres({ max_wal_size: "4GB" });
const serverUrl = process.env.PG_URL ?? postgres?.url ?? "";
const url = serverUrl.replace(/\/postgres$/, "/pgoutput_bench");

await sql(serverUrl, "DROP DATABASE IF EXISTS pgoutput_bench WITH (FORCE)");
await sql(serverUrl, "CREATE DATABASE pgoutput_bench");
await sql(url, "CREATE TABLE users (id int PRIMARY KEY, email text, score int)");
await sql(url, "CREATE PUBLICATION bench_pub FOR TABLE users");
await sql(url, "SELECT pg_create_logical_replication_slot('raw_slot', 'pgoutput')");
await sql(url, "SELECT pg_create_logical_replication_slot('e2e_slot', 'pgoutput')");
// The backlog: inserts then updates, in transactions of 10,000 rows.
const users = CHANGES / 2;
for (let i = 1; i <= users; i += 10_000) await sql(url, "INSERT INTO users SELECT g, 'u' || g || '@example.com', g FROM generate_series($1::int, $2::int) g", [i, i + 9_999]);
for (let i = 1; i <= users; i += 10_000) await sql(url, "UPDATE users SET score = score + 1 WHERE id BETWEEN $1 AND $2", [i, i + 9_999]);

async function endToEnd(): Promise<number> {
  const result = validateObjects(
    [
      { class: "app", id: "shop", type: "postgres", options: { connectionString: url, slot: "e2e_slot", publication: "bench_pub", snapshot: "no_data" } },
      { class: "model", id: "users" },
      { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
      { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
      { class: "property", id: "score", type: "integer", sourceId: "users_table", options: { column: "score" } },
      { class: "group", id: "high", modelId: "users", rules: [{ propertyId: "score", op: "gt", match: users / 2 }] },
      { class: "group", id: "example", modelId: "users", rules: [{ propertyId: "email", op: "like", match: "%@example.com" }] },
    ].map((value, index) => ({ file: "bench", index, value })),
  );
  if (!result.config) throw new Error(JSON.stringify(result.issues));
  const config = result.config;
  const app = config.apps[0];
  if (!app) throw new Error("config");
  const source = postgresCdcSource.create(app, config.sources, { logger: pino({ level: "silent" }), positions: new Map() });
  return readIntoState(source, compileDomain(config), CHANGES);
}

const rawSeconds = await rawDecode(url, "raw_slot", "bench_pub", CHANGES);
const e2eSeconds = await endToEnd();
await sql(serverUrl, "DROP DATABASE IF EXISTS pgoutput_bench WITH (FORCE)");
await postgres?.stop();
const out = {
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  changes: CHANGES,
  rawDecodePerSecond: Math.round(CHANGES / rawSeconds),
  endToEndPerSecond: Math.round(CHANGES / e2eSeconds),
  endToEndToRaw: Number((rawSeconds / e2eSeconds).toFixed(3)),
};
console.log(JSON.stringify(out));
console.log(`raw pgoutput decode: ${out.rawDecodePerSecond.toLocaleString("en")} changes/s\nend to end into state: ${out.endToEndPerSecond.toLocaleString("en")} changes/s (${(out.endToEndToRaw * 100).toFixed(1)} % of raw)`);
