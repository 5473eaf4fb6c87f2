// A model topic whose retention deleted events before the workers applied them (README, "The
// workers"): the worker stopped for longer than the topic keeps its events (retention.ms, 7 days by
// default, or a topic made beforehand with a shorter one), or a partition held back that long. Before
// 2026-12-03 a worker took the partition over, sought to the offset after its state's position, and
// Kafka, finding it gone, moved the consumer to the oldest event left: the deleted changes were
// skipped with a warning ("the partition's input skips offsets") and the partition's records stayed
// without them for good. Now the takeover compares the state's next offset with the partition's first
// retained one and refuses with 65, naming the partition and the offsets lost; a worker that finds
// offsets skipped while it runs gives the partition up (70), and its next takeover says which.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Relay } from "../../daemon/relay.js";
import { Worker } from "../../daemon/worker.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const USERS = 30;

describe("a model topic whose retention deleted events the workers had not applied", () => {
  const work = mkdtempSync(join(tmpdir(), "scale-retention-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "scale_retention");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is refused with 65 naming the partition and the offsets lost, not skipped", { timeout: 180_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("scaleret");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 2 })));
    for (const sql of scaleWrites(0, USERS)) await db.query(sql);
    const count = async () => Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);
    const users = await count();

    const http = async () => `127.0.0.1:${await freePort()}`;
    const kafka = new Kafka({ clientId: "scale-retention", brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http: await http(), maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const state = join(work, "worker");
    const startWorker = async (logger = quiet) => {
      const address = await http();
      const w = await Worker.start({ config: file, state, http: address, maxBatchDelayMs: 2, drainTimeoutMs: 2000 }, logger);
      if (typeof w === "number") throw new Error(`worker exit ${w}`);
      return { w, address };
    };
    const published = async () => {
      const { rows: lsn } = await db.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
      await waitFor("the relay published the writes", async () => {
        const { rows } = await db.query<{ ok: boolean }>(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`, [lsn[0]?.lsn, names.slot]);
        return rows[0]?.ok ? true : undefined;
      }, 60_000);
      return admin.fetchTopicOffsets(names.topic);
    };
    try {
      const first = await startWorker();
      await waitFor("the worker caught up", async () => {
        const text = (await get(first.address, "/metrics")).body;
        const lags = text.split("\n").filter((l) => l.startsWith("grouparoo_kafka_consumer_lag{"));
        return sample(text, 'grouparoo_records{model="users"}') === users && lags.length === 2 && lags.every((l) => l.endsWith(" 0")) ? true : undefined;
      }, 90_000);
      await first.w.drain("SIGTERM");
      expect(await first.w.finished).toBe(0);
      const [applied] = await admin.fetchOffsets({ groupId: names.groupId, topics: [names.topic] });
      const next = new Map((applied?.partitions ?? []).map((p) => [p.partition, p.offset]));

      // While no worker runs, the relay publishes more, and retention deletes partition 1's events
      // up to its end (as a topic's retention.ms would, past a week): none of them was applied.
      for (const sql of scaleWrites(1, USERS)) await db.query(sql);
      for (const sql of scaleWrites(2, USERS)) await db.query(sql);
      const ends = await published();
      const end = ends.find((o) => o.partition === 1)?.high as string;
      expect(BigInt(end)).toBeGreaterThan(BigInt(next.get(1) as string));
      await admin.deleteTopicRecords({ topic: names.topic, partitions: [{ partition: 1, offset: end }] });

      const lines: string[] = [];
      const { w } = await startWorker(pino({ level: "info" }, { write: (line: string) => void lines.push(line) }));
      const code = await Promise.race([w.finished, new Promise<string>((r) => setTimeout(() => r("still running after 30 s"), 30_000))]);
      if (typeof code === "string") {
        await w.drain("SIGTERM");
        await w.finished;
      }
      // kafkajs logs its own errors too (a fetch Kafka answers with OFFSET_OUT_OF_RANGE): the worker's are its partitions'.
      const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50 && l.msg.startsWith("partition users/"));
      expect({ code, first: errors[0]?.msg }).toEqual({
        code: 65,
        first:
          `partition users/1's next change is offset ${next.get(1)} of topic ${names.topic}, but the topic keeps that partition's events only from offset ${end}: ` +
          `Kafka deleted ${BigInt(end) - BigInt(next.get(1) as string)} events (offsets ${next.get(1)} to ${BigInt(end) - 1n}) before any worker applied them (the topic's retention.ms or retention.bytes, or records deleted by hand), and the partition's state cannot have them. ` +
          `Apply them by deploying anew (the relay on a new slot and publication with an empty --state, the workers on a new consumer group, model topic and changelog with empty --state directories), and give the model topic a retention longer than the workers may stay behind (the partition's state was not changed); not starting`,
      });
    } finally {
      await relay.drain("SIGTERM");
      await relay.finished;
      await admin.disconnect();
    }
  });
  it("gives a partition up with 65 when its input skips offsets the topic deleted while it was held back", { timeout: 180_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("scaleret2");
    await db.query("DELETE FROM users; DELETE FROM purchases; DELETE FROM crm");
    const file = join(work, "config2.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 1 })));
    for (const sql of scaleWrites(0, USERS)) await db.query(sql);
    const http = async () => `127.0.0.1:${await freePort()}`;
    const kafka = new Kafka({ clientId: "scale-retention", brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const relay = await Relay.start({ config: file, state: join(work, "relay2"), http: await http(), maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const lock = new pg.Client({ connectionString: db.url });
    const lines: string[] = [];
    const address = await http();
    const w = await Worker.start({ config: file, state: join(work, "worker2"), http: address, maxBatchDelayMs: 2, drainTimeoutMs: 2000, outboxBound: 2 }, pino({ level: "info" }, { write: (line: string) => void lines.push(line) }));
    if (typeof w === "number") throw new Error(`worker exit ${w}`);
    let code: number | string = "not finished";
    try {
      const users = Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);
      await waitFor("the worker delivered", async () => (Number((await db.query("SELECT count(*) AS n FROM crm")).rows[0]?.n) === users && sample((await get(address, "/metrics")).body, 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined), 90_000);
      // The destination held: the partition's outbox reaches its bound and its input is paused.
      await lock.connect();
      await lock.query("BEGIN");
      await lock.query("LOCK TABLE crm IN ACCESS EXCLUSIVE MODE");
      for (const sql of scaleWrites(1, USERS)) await db.query(sql);
      await waitFor("the partition held back", async () => (sample((await get(address, "/metrics")).body, "grouparoo_sources_paused") === 1 ? true : undefined), 60_000);
      const [applied] = await admin.fetchOffsets({ groupId: names.groupId, topics: [names.topic] });
      const next = BigInt(applied?.partitions.find((p) => p.partition === 0)?.offset as string);
      // Meanwhile the relay publishes more, and retention deletes what the partition has not read.
      for (const sql of scaleWrites(2, USERS)) await db.query(sql);
      const { rows: lsn } = await db.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
      await waitFor("the relay published the writes", async () => {
        const { rows } = await db.query<{ ok: boolean }>(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`, [lsn[0]?.lsn, names.slot]);
        return rows[0]?.ok ? true : undefined;
      }, 60_000);
      const end = BigInt((await admin.fetchTopicOffsets(names.topic)).find((o) => o.partition === 0)?.high as string);
      await admin.deleteTopicRecords({ topic: names.topic, partitions: [{ partition: 0, offset: String(end) }] });
      await lock.query("COMMIT");
      // Released, the partition reads on from the first event the topic keeps; one more change gets there.
      await db.query(`UPDATE users SET name = 'after' WHERE id = (SELECT min(id) FROM users)`);
      code = await Promise.race([w.finished, new Promise<string>((r) => setTimeout(() => r("still running after 60 s"), 60_000))]);
      const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50 && l.msg.startsWith("partition users/"));
      const pushed = errors[0]?.msg.match(/next change is offset (\d+) /)?.[1];
      // The offsets it had read before the deletion, at most up to where it was held back.
      expect(BigInt(pushed ?? -1)).toBeGreaterThanOrEqual(next);
      expect(BigInt(pushed ?? -1)).toBeLessThan(end);
      expect({ code, first: errors[0]?.msg }).toEqual({
        code: 65,
        first:
          `partition users/0's next change is offset ${pushed} of topic ${names.topic}, but the topic keeps that partition's events only from offset ${end}: ` +
          `Kafka deleted ${end - BigInt(pushed ?? 0)} events (offsets ${pushed} to ${end - 1n}) before any worker applied them (the topic's retention.ms or retention.bytes, or records deleted by hand), and the partition's state cannot have them. ` +
          `Apply them by deploying anew (the relay on a new slot and publication with an empty --state, the workers on a new consumer group, model topic and changelog with empty --state directories), and give the model topic a retention longer than the workers may stay behind (the partition's state was not changed); giving the partition up`,
      });
    } finally {
      await lock.end().catch(() => undefined);
      if (code === "not finished" || typeof code === "string") {
        await w.drain("SIGTERM");
        await w.finished;
      }
      await relay.drain("SIGTERM");
      await relay.finished;
      await admin.disconnect();
    }
  });
});
