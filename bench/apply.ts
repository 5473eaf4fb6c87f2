// Benchmark: changes per second through decode-free apply (records + aggregates + 10 groups +
// outbox, one durable LMDB transaction per batch), against the raw ceiling measured in the same run:
// lmdb-js puts of the same number of records, in transactions of the same size, same durability.
import { cpus, totalmem, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { open } from "lmdb";
import { Store, idKey } from "../state/store.js";
import type { Change } from "../core/change.js";
import { DEFAULT_PIPELINE_OPTIONS } from "../streams/pipeline.js";
import { coreDomain } from "../test/helpers/core.js";
import { applyBatch } from "../streams/batch.js";
import { profiled, profiledReport } from "./profile.js";

const COUNT = Number(process.env.BENCH_CHANGES ?? 200_000);
// Batches as the daemon cuts them under a backlog (its --max-batch-size default).
const BATCH = Number(process.env.BENCH_BATCH ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize);
const USERS = 20_000;
const NOW = Date.UTC(2026, 10, 1);

function changes(): Change[] {
  const out: Change[] = [];
  for (let i = 0; i < COUNT; i += 1) {
    const position = { stream: "db", position: String(i) };
    if (i < USERS) {
      out.push({ sourceId: "users_table", op: "insert", key: String(i), before: null, after: { id: i, email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 7 === 0 }, position, commitTime: NOW + i });
    } else {
      const id = i - USERS;
      out.push({
        sourceId: "purchases_table",
        op: "insert",
        key: String(id),
        before: null,
        after: { id, user_id: id % USERS, amount: (id % 90) + 0.5, state: id % 5 ? "paid" : "refunded", sku: id % 2 ? "A" : "B", created_at: NOW - (id % 5) * 86_400_000 },
        position,
        commitTime: NOW + i,
      });
    }
  }
  return out;
}

async function applyThroughCore(input: Change[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-core-"));
  const store = Store.open(dir);
  const domain = coreDomain();
  const started = performance.now();
  await profiled("apply", async () => {
    for (let i = 0; i < input.length; i += BATCH) await applyBatch(store, domain, input.slice(i, i + BATCH), NOW);
  });
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

async function rawPuts(input: Change[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-raw-"));
  const root = open({ path: dir, noSync: false, useWritemap: false, overlappingSync: false, maxDbs: 4, cache: false });
  const db = root.openDB<unknown, (string | number)[]>({ name: "records", sharedStructuresKey: Symbol.for("structures") });
  const started = performance.now();
  for (let i = 0; i < input.length; i += BATCH) {
    const batch = input.slice(i, i + BATCH);
    await root.transaction(() => {
      for (const c of batch) db.put([c.sourceId, idKey(c.key)], { id: c.key, values: c.after, groups: [] });
    });
    await root.flushed;
  }
  const seconds = (performance.now() - started) / 1000;
  await root.close();
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

/**
 * The least LMDB work any design keeping the invariants does per change, with no domain logic
 * at all: a user insert writes its record and its unique value; a purchase reads its row (replays must
 * be idempotent), finds its user by unique value, reads and rewrites the user's record (a counter and
 * a sum stand for the aggregates), writes its row and queues one outbox entry. Same batches, same
 * durability, tiny values, shared structures, ids in keys as the state stores them (idKey).
 */
async function minimalWork(input: Change[]): Promise<number> {
  type K = (string | number)[];
  const dir = mkdtempSync(join(tmpdir(), "bench-floor-"));
  const root = open({ path: dir, noSync: false, useWritemap: false, overlappingSync: false, maxDbs: 8, cache: false });
  const shared = { sharedStructuresKey: Symbol.for("structures") };
  const records = root.openDB<{ id: string; values: Record<string, unknown>; groups: string[] }, K>({ name: "records", ...shared });
  const rows = root.openDB<unknown, K>({ name: "rows", ...shared });
  const unique = root.openDB<string, K>({ name: "unique" });
  const outbox = root.openDB<unknown, K>({ name: "outbox", ...shared });
  let seq = 0;
  const started = performance.now();
  for (let i = 0; i < input.length; i += BATCH) {
    const batch = input.slice(i, i + BATCH);
    await root.transaction(() => {
      for (const c of batch) {
        const row = c.after ?? {};
        if (c.sourceId === "users_table") {
          records.put(["users", idKey(c.key)], { id: c.key, values: { user_id: row.id, email: row.email, count: 0, sum: 0 }, groups: [] });
          unique.put(["users", "user_id", idKey(c.key)], c.key);
          continue;
        }
        rows.get([c.sourceId, idKey(c.key)]);
        const recordId = unique.get(["users", "user_id", idKey(String(row.user_id))]);
        const record = recordId === undefined ? undefined : records.get(["users", idKey(recordId)]);
        if (record && recordId !== undefined) {
          record.values.count = Number(record.values.count) + 1;
          record.values.sum = Number(record.values.sum) + Number(row.amount);
          records.put(["users", idKey(recordId)], record);
          seq += 1;
          outbox.put(["crm", seq], { recordId, newRecordProperties: { id: row.user_id, ltv: record.values.sum }, newGroups: [] });
        }
        rows.put([c.sourceId, idKey(c.key)], { recordId: recordId ?? null, row });
      }
    });
    await root.flushed;
  }
  const seconds = (performance.now() - started) / 1000;
  await root.close();
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

const input = changes();
const raw = await rawPuts(input);
const floor = await minimalWork(input);
const core = await applyThroughCore(input);
const result = {
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  changes: COUNT,
  batch: BATCH,
  groups: coreDomain().groups.size,
  coreChangesPerSecond: Math.round(COUNT / core),
  rawPutsPerSecond: Math.round(COUNT / raw),
  /** Changes per second of the minimal LMDB work per change, without domain logic (see minimalWork). */
  minimalWorkPerSecond: Math.round(COUNT / floor),
  /** Applied changes per second as a fraction of raw puts per second. */
  coreToRaw: Number((raw / core).toFixed(3)),
  peakRssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
};
console.log(JSON.stringify(result));
console.log(
  `apply: ${result.coreChangesPerSecond.toLocaleString("en")} changes/s (records + aggregates + ${result.groups} groups + outbox)\n` +
    `raw lmdb-js puts: ${result.rawPutsPerSecond.toLocaleString("en")} records/s\n` +
    `minimal LMDB work per change, no domain logic: ${result.minimalWorkPerSecond.toLocaleString("en")} changes/s\n` +
    `core / raw: ${(result.coreToRaw * 100).toFixed(1)} % (the raw ceiling is ${(1 / result.coreToRaw).toFixed(1)}x faster)`,
);
const report = profiledReport("the core applying its batches", "apply");
if (report) console.log(`\n${report}`);
