// Relay and workers against real Postgres and Kafka (README, "Relay and workers"), in-process: the
// relay publishes each change keyed by its record and confirms the slot only once the broker has the
// events; two workers share a 6-partition model and their destination table ends equal to one
// daemon's; a worker whose state directory is deleted rebuilds it from the changelog and goes on exact.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Relay } from "../../daemon/relay.js";
import { Worker } from "../../daemon/worker.js";
import { decodeRelayEvent } from "../../connectors/kafka/relay-codec.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const USERS = 60;

describe("relay and workers", () => {
  const work = mkdtempSync(join(tmpdir(), "scale-out-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "scale_out");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const table = async (name: string) => (await db.query(`SELECT id, email, name, ltv, purchases, last_purchase, segments FROM ${name} ORDER BY id`)).rows;

  it("two workers end where one daemon ends, through rebalances and a deleted state directory", { timeout: 180_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("scale");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, brokers, names, { partitioned: true })));
    const oracleFile = join(work, "oracle.json");
    writeFileSync(oracleFile, JSON.stringify(scaleConfig(db.url, brokers, names, { partitioned: false, table: "crm_oracle", slot: `${names.slot}_oracle` })));
    for (const sql of scaleWrites(0, USERS)) await db.query(sql);

    const http = async () => `127.0.0.1:${await freePort()}`;
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http: await http(), maxBatchDelayMs: 2 }, logger);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    let lastHttp = "";
    const startWorker = async (n: string) => {
      lastHttp = await http();
      const w = await Worker.start({ config: file, state: join(work, `worker-${n}`), http: lastHttp, maxBatchDelayMs: 2, drainTimeoutMs: 2000 }, logger);
      if (typeof w === "number") throw new Error(`worker ${n} exit ${w}`);
      return w;
    };
    const a = await startWorker("a");
    let b = await startWorker("b");
    for (let round = 1; round <= 3; round += 1) for (const sql of scaleWrites(round, USERS)) await db.query(sql);
    // A rebalance: b leaves, comes back with its local state (kept), then with its state deleted (restored).
    await b.drain("SIGTERM");
    await b.finished;
    for (let round = 4; round <= 5; round += 1) for (const sql of scaleWrites(round, USERS)) await db.query(sql);
    b = await startWorker("b");
    for (const sql of scaleWrites(6, USERS)) await db.query(sql);
    // Its partitions' states hold the stream so far (their changelogs with them) before they go.
    const held = lastHttp;
    await waitFor("worker b caught up", async () => {
      const text = (await get(held, "/metrics")).body;
      const lag = text.split("\n").filter((l) => l.startsWith("grouparoo_kafka_consumer_lag{")).map((l) => Number(l.slice(l.lastIndexOf(" ") + 1)));
      return (sample(text, 'grouparoo_records{model="users"}') ?? 0) > 10 && lag.length > 0 && lag.every((n) => n === 0) ? true : undefined;
    }, 60_000);
    await b.drain("SIGTERM");
    await b.finished;
    rmSync(join(work, "worker-b"), { recursive: true, force: true });
    b = await startWorker("b");
    // Its partitions come back from the changelog, not from a local copy.
    const restored = await waitFor("worker b restored its partitions", async () => {
      const text = (await get(lastHttp, "/metrics")).body;
      const owned = sample(text, 'grouparoo_partitions_owned{model="users"}') ?? 0;
      // Every partition it owns taken over by a restore (counted as its takeover resolves, just after it opens).
      const restoredPartitions = sample(text, 'grouparoo_restore_seconds_count{model="users",how="restored"}') ?? 0;
      return owned > 0 && restoredPartitions >= owned && (await get(lastHttp, "/readyz")).status === 200 ? text : undefined;
    }, 60_000);
    expect(sample(restored, 'grouparoo_restored_records_total{model="users"}')).toBeGreaterThan(100);
    for (const sql of scaleWrites(7, USERS)) await db.query(sql);

    const oracle = await Daemon.start({ config: oracleFile, state: join(work, "oracle"), http: await http(), maxBatchDelayMs: 2 }, logger);
    if (typeof oracle === "number") throw new Error(`oracle exit ${oracle}`);
    try {
      // Settled: its snapshot read and applied (nothing is written to the tables any more, so nothing
      // follows it), no Run left, and its outbox delivered.
      const expected = await waitFor("the oracle applied its snapshot and delivered it", async () => {
        const state = oracle.state;
        if (state.position("postgres:shop:snapshot")?.startsWith("complete:") !== true) return undefined;
        if ((oracle.runs?.pending().length ?? 1) > 0 || state.outboxDepth("crm") > 0) return undefined;
        const rows = JSON.stringify(await table("crm_oracle"));
        return rows !== "[]" ? rows : undefined;
      }, 60_000);
      await waitFor("the workers' table equals the oracle's", async () => (JSON.stringify(await table("crm")) === expected ? true : undefined), 90_000).catch(async (error: Error) => {
        expect(await table("crm")).toEqual(JSON.parse(expected));
        throw error;
      });
      expect((JSON.parse(expected) as unknown[]).length).toBeGreaterThan(30);
    } finally {
      await oracle.drain("SIGTERM");
      await oracle.finished;
      await Promise.all([a.drain("SIGTERM"), b.drain("SIGTERM"), relay.drain("SIGTERM")]);
      await Promise.all([a.finished, b.finished, relay.finished]);
    }

    // Every event of the topic is keyed by its record: users by id, purchases by user_id.
    const kafka = new Kafka({ clientId: "scale-test", brokers, logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `${names.groupId}-check` });
    const seen: { partition: number; key: string | null; source: string; row: Record<string, unknown> | null }[] = [];
    await consumer.connect();
    await consumer.subscribe({ topics: [names.topic], fromBeginning: true });
    const admin = kafka.admin();
    await admin.connect();
    const total = (await admin.fetchTopicOffsets(names.topic)).reduce((n, p) => n + Number(p.high), 0);
    await admin.disconnect();
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const decoded = decodeRelayEvent(message.value, message.headers);
        if (decoded.ok) seen.push({ partition, key: message.key?.toString() ?? null, source: decoded.change.sourceId, row: decoded.change.after ?? decoded.change.before });
      },
    });
    await waitFor("the topic read", async () => (seen.length >= total ? true : undefined), 30_000);
    await consumer.disconnect();
    const partitionOf = new Map<string, number>();
    for (const e of seen) {
      if (e.key === null) continue;
      if (e.source === "users_table") expect(e.key).toBe(String(e.row?.id));
      if (partitionOf.has(e.key)) expect(partitionOf.get(e.key)).toBe(e.partition);
      partitionOf.set(e.key, e.partition);
    }
    expect(new Set(seen.map((e) => e.partition)).size).toBe(6);
  });
});
