// Benchmark: changes per second through decode-free apply (records + aggregates + 10 groups +
// outbox, one durable LMDB transaction per batch), against the raw ceiling measured in the same run:
// lmdb-js puts of the same number of records, in transactions of the same size, same durability.
import { cpus, totalmem, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { open } from "lmdb";
import { Store } from "../state/store.js";
import type { Change } from "../streams/change.js";
import { DEFAULT_PIPELINE_OPTIONS } from "../streams/pipeline.js";
import { coreDomain } from "../test/helpers/core.js";

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
  for (let i = 0; i < input.length; i += BATCH) await store.applyBatch(domain, input.slice(i, i + BATCH), NOW);
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

async function rawPuts(input: Change[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-raw-"));
  const root = open({ path: dir, noSync: false, useWritemap: false, overlappingSync: false, maxDbs: 4, cache: false });
  const db = root.openDB<unknown, (string | number)[]>({ name: "records" });
  const started = performance.now();
  for (let i = 0; i < input.length; i += BATCH) {
    const batch = input.slice(i, i + BATCH);
    await root.transaction(() => {
      for (const c of batch) db.put([c.sourceId, c.key], { id: c.key, values: c.after, groups: [] });
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
const core = await applyThroughCore(input);
const result = {
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  changes: COUNT,
  batch: BATCH,
  groups: coreDomain().groups.size,
  coreChangesPerSecond: Math.round(COUNT / core),
  rawPutsPerSecond: Math.round(COUNT / raw),
  /** Applied changes per second as a fraction of raw puts per second. */
  coreToRaw: Number((raw / core).toFixed(3)),
  peakRssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
};
console.log(JSON.stringify(result));
console.log(
  `apply: ${result.coreChangesPerSecond.toLocaleString("en")} changes/s (records + aggregates + ${result.groups} groups + outbox)\n` +
    `raw lmdb-js puts: ${result.rawPutsPerSecond.toLocaleString("en")} records/s\n` +
    `core / raw: ${(result.coreToRaw * 100).toFixed(1)} % (the raw ceiling is ${(1 / result.coreToRaw).toFixed(1)}x faster)`,
);
