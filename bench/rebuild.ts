// Benchmark: rebuilding one aggregate property from the stored rows (a Run, issue #11), over 1,000,000
// purchase rows of 100,000 users, against the raw ceiling measured in the same run: reading those rows
// from LMDB in key order and decoding them, with no domain logic at all.
import { cpus, totalmem, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import type { Change } from "../core/change.js";
import { definitionsOf } from "../core/definitions.js";
import { validateObjects } from "../daemon/config/validate.js";
import { Store } from "../state/store.js";
import { applyBatch } from "../streams/batch.js";
import { Runs } from "../streams/runs.js";
import { asRaw } from "../test/helpers/config.js";
import { profiled, profiledReport } from "./profile.js";

const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const BATCH = 5000;
const NOW = Date.UTC(2026, 10, 1);

type Obj = Record<string, unknown>;
const objects = (withMax: boolean): Obj[] => [
  { class: "app", id: "db", type: "postgres", options: { database: "shop" } },
  { class: "model", id: "users" },
  { class: "source", id: "users_table", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
  { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "purchases" }, mapping: { user_id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
  { class: "property", id: "purchase_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
  ...(withMax ? [{ class: "property", id: "largest", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "max" }, filters: [{ key: "state", op: "eq", match: "paid" }] }] : []),
];

function compile(withMax: boolean) {
  const result = validateObjects(asRaw(objects(withMax)));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return { config: result.config, domain: result.domain };
}

async function* batches(): AsyncGenerator<Change[]> {
  let batch: Change[] = [];
  const push = (change: Change) => {
    batch.push(change);
  };
  for (let i = 0; i < USERS; i += 1) {
    push({ sourceId: "users_table", op: "insert", key: String(i), before: null, after: { id: i }, position: { stream: "db", position: String(i) }, commitTime: NOW });
    if (batch.length >= BATCH) yield batch.splice(0);
  }
  for (let id = 0; id < ROWS; id += 1) {
    push({ sourceId: "purchases_table", op: "insert", key: String(id), before: null, after: { id, user_id: id % USERS, amount: (id * 7) % 1000, state: id % 5 ? "paid" : "refunded" }, position: { stream: "db", position: String(USERS + id) }, commitTime: NOW });
    if (batch.length >= BATCH) yield batch.splice(0);
  }
  if (batch.length > 0) yield batch;
  batch = [];
}

const dir = mkdtempSync(join(tmpdir(), "bench-rebuild-"));
const store = Store.open(dir);
const logger = pino({ level: "silent" });
const before = compile(false);
const loadStarted = performance.now();
// The state records the first config's definitions, then holds the rows.
await new Runs({ store, domain: before.domain, schedule: () => undefined, connectorOf: () => undefined, logger }).start(definitionsOf(before.config, before.domain), () => false, true);
for await (const batch of batches()) await applyBatch(store, before.domain, batch, NOW);
const loadSeconds = (performance.now() - loadStarted) / 1000;

// The raw ceiling: every purchase row read in key order and decoded.
const rawStarted = performance.now();
let read = 0;
for (const [, row] of store.rowsOf("purchases_table")) if (row.row) read += 1;
const rawSeconds = (performance.now() - rawStarted) / 1000;
if (read !== ROWS) throw new Error(`read ${read} rows, expected ${ROWS}`);

// The Run: the new property planned from the definitions and rebuilt chunk by chunk.
const after = compile(true);
const runs = new Runs({
  store,
  domain: after.domain,
  schedule: (work) => {
    void (async () => {
      while (await work.step());
    })();
  },
  connectorOf: () => undefined,
  logger,
});
const runStarted = performance.now();
const plan = await profiled("rebuild", async () => {
  const planned = await runs.start(definitionsOf(after.config, after.domain), () => false, false);
  await runs.idle();
  return planned;
});
const runSeconds = (performance.now() - runStarted) / 1000;
if (plan.runs.map((r) => r.spec.kind).join() !== "rebuild") throw new Error(`planned ${plan.runs.map((r) => r.spec.kind).join()}`);
const sample = store.getRecord("users", "7");
await store.close();
rmSync(dir, { recursive: true, force: true });

const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(
  JSON.stringify({
    benchmark: "rebuild",
    machine,
    users: USERS,
    rows: ROWS,
    loadRowsPerSecond: Math.round((USERS + ROWS) / loadSeconds),
    rawReadRowsPerSecond: Math.round(ROWS / rawSeconds),
    rebuildRowsPerSecond: Math.round(ROWS / runSeconds),
    rebuildOverRaw: Number((rawSeconds / runSeconds).toFixed(3)),
    sampleValue: sample?.values.largest,
  }),
);
const report = profiledReport("the Run rebuilding the aggregate", "rebuild");
if (report) console.log(`\n${report}`);
