// Benchmark of relay and workers (README, "Relay and workers"): a 6-partition model topic pre-filled
// by the relay from a snapshot of 20,000 users and 180,000 purchases (200,000 events), then read into
// committed state by 1, 2 and 3 worker processes (a fresh consumer group and changelog each time; the
// example's aggregates and groups, no destination): events per second from the first worker's start
// until the group's offsets reach the topic's end (each partition's state and changelog committed in
// Kafka transactions). Last, one worker with an empty --state restores the 1-worker run's changelog:
// changelog records per second. Uses PG_URL / KAFKA_BROKERS, or starts both like the tests do.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { sql } from "./common.js";
import { startKafka } from "../test/services/kafka.js";
import { freePort } from "../test/services/process.js";
import { startPostgres } from "../test/services/postgres.js";
import { get, sample, waitFor } from "../test/helpers/daemon.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, startMode, type ModeProcess } from "../test/helpers/scale.js";

const USERS = Number(process.env.BENCH_USERS ?? 20_000);
const PURCHASES = Number(process.env.BENCH_PURCHASES ?? 180_000);
const PARTITIONS = 6;

const pgService = process.env.PG_URL ? undefined : await startPostgres();
const kafkaService = process.env.KAFKA_BROKERS ? undefined : await startKafka();
const serverUrl = process.env.PG_URL ?? pgService?.url ?? "";
const brokers = process.env.KAFKA_BROKERS?.split(",") ?? kafkaService?.brokers ?? [];
const work = mkdtempSync(join(tmpdir(), "bench-scale-"));
const database = `bench_scale_${Date.now()}`;
await sql(serverUrl, `CREATE DATABASE ${database}`);
const url = new URL(serverUrl);
url.pathname = `/${database}`;
const db = url.toString();
const running: ModeProcess[] = [];
const kafka = new Kafka({ clientId: "bench-scale", brokers, logLevel: logLevel.NOTHING });
const admin = kafka.admin();

async function stop(p: ModeProcess): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
  await p.exited;
}

try {
  for (const text of SCALE_SCHEMA) await sql(db, text);
  await sql(db, `INSERT INTO users SELECT g, 'u' || g || '@example.com', 'name' || g, g % 3 = 0, '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 minute', ARRAY['a'] FROM generate_series(1, ${USERS}) g`);
  await sql(db, `INSERT INTO purchases SELECT g, 1 + (g * 7919) % ${USERS}, (g * 13) % 97 + 0.5, CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'successful' END, '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(1, ${PURCHASES}) g`);
  const names = scaleNames("bench");
  const configOf = (run: string) => {
    const objects = scaleConfig(db, brokers, { ...names, groupId: `${names.groupId}-${run}` }, { partitioned: true, partitions: PARTITIONS }).filter((o) => o.class !== "destination");
    const model = objects.find((o) => o.class === "model") as { partitioned: Record<string, unknown> };
    model.partitioned.changelogTopic = `${names.topic}.changelog-${run}`;
    const file = join(work, `config-${run}.json`);
    writeFileSync(file, JSON.stringify(objects));
    return file;
  };
  await admin.connect();

  // The relay publishes the snapshot; the topic is then read as it is by each run.
  const events = USERS + PURCHASES;
  const relayStarted = performance.now();
  const relay = startMode("relay", ["--config", configOf("relay"), "--state", join(work, "relay")], `127.0.0.1:${await freePort()}`);
  running.push(relay);
  const published = async () => (await admin.fetchTopicOffsets(names.topic).catch(() => [])).reduce((n, p) => n + Number(p.high), 0);
  await waitFor("the relay published the snapshot", async () => {
    if (relay.child.exitCode !== null) throw new Error(`the relay exited (${relay.child.exitCode}):\n${relay.logs().slice(-3000)}`);
    return (await published()) >= events ? true : undefined;
  }, 600_000).catch((error: Error) => {
    throw new Error(`${error.message}\n${relay.logs().slice(-3000)}`);
  });
  const relaySeconds = (performance.now() - relayStarted) / 1000;
  const topicEnd = await published();
  await stop(relay);

  const results: { workers: number; seconds: number; rate: number }[] = [];
  let changelogRecords = 0;
  for (const count of [1, 2, 3]) {
    const run = `w${count}`;
    const file = configOf(run);
    const started = performance.now();
    const workers: ModeProcess[] = [];
    for (let i = 0; i < count; i += 1) workers.push(startMode("worker", ["--config", file, "--state", join(work, run, `w${i}`)], `127.0.0.1:${await freePort()}`));
    running.push(...workers);
    const ends = await admin.fetchTopicOffsets(names.topic);
    await waitFor(`${count} worker(s) committed the topic`, async () => {
      const [offsets] = await admin.fetchOffsets({ groupId: `${names.groupId}-${run}`, topics: [names.topic] });
      return ends.every((end) => offsets?.partitions.find((p) => p.partition === end.partition)?.offset === end.high) ? true : undefined;
    }, 900_000);
    const seconds = (performance.now() - started) / 1000;
    if (count === 1) {
      const metrics = (await get(workers[0]?.http ?? "", "/metrics")).body;
      changelogRecords = sample(metrics, 'grouparoo_changelog_records_total{model="users"}') ?? 0;
    }
    for (const w of workers) await stop(w);
    results.push({ workers: count, seconds, rate: topicEnd / seconds });
    console.log(`${count} worker(s): ${topicEnd} events in ${seconds.toFixed(1)} s = ${Math.round(topicEnd / seconds)} events/s`);
  }

  // Restore: the 1-worker run's changelog into an empty state.
  const restoreStarted = performance.now();
  const restorer = startMode("worker", ["--config", join(work, "config-w1.json"), "--state", join(work, "restore")], `127.0.0.1:${await freePort()}`);
  running.push(restorer);
  await waitFor("the partitions restored", async () => {
    const text = (await get(restorer.http, "/metrics").catch(() => ({ body: "" }))).body;
    return sample(text, 'grouparoo_partitions_owned{model="users"}') === PARTITIONS && (await get(restorer.http, "/readyz")).status === 200 ? text : undefined;
  }, 600_000);
  const restoreSeconds = (performance.now() - restoreStarted) / 1000;
  const restored = sample((await get(restorer.http, "/metrics")).body, 'grouparoo_restored_records_total{model="users"}') ?? 0;
  await stop(restorer);

  console.log(`\nscale benchmark, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
  console.log(`relay: ${events} snapshot rows published in ${relaySeconds.toFixed(1)} s (${Math.round(events / relaySeconds)} events/s, start-up and snapshot included)`);
  console.log("| workers | seconds | events/s | vs 1 worker |");
  console.log("|---|---|---|---|");
  for (const r of results) console.log(`| ${r.workers} | ${r.seconds.toFixed(1)} | ${Math.round(r.rate)} | ${(r.rate / (results[0]?.rate ?? 1)).toFixed(2)}× |`);
  console.log(`changelog of the 1-worker run: ${changelogRecords} records (one per state key written, per Kafka transaction)`);
  console.log(`restore: ${restored} changelog records into an empty state in ${restoreSeconds.toFixed(1)} s = ${Math.round(restored / restoreSeconds)} records/s (process start, group join and claims included)`);
  console.log(JSON.stringify({ benchmark: "scale", events, relayPerSecond: Math.round(events / relaySeconds), workers: results.map((r) => ({ workers: r.workers, seconds: Number(r.seconds.toFixed(1)), perSecond: Math.round(r.rate) })), changelogRecords, restoredRecords: restored, restorePerSecond: Math.round(restored / restoreSeconds) }));
} finally {
  for (const p of running) await stop(p).catch(() => undefined);
  await admin.disconnect().catch(() => undefined);
  await sql(serverUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
  await kafkaService?.stop();
  await pgService?.stop();
}
