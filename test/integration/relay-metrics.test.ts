// The relay's grouparoo_relay_events_total counts the events it published (README, "Metrics": "events
// the relay published, acknowledged by the broker"). An event for every partition (the end of a
// snapshot, a truncate) is published once per partition; before 2026-12-03 it was counted once, so
// the counter's sum fell short of what the model topic holds by partitions - 1 for each of them.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Relay } from "../../daemon/relay.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describe("the relay's grouparoo_relay_events_total", () => {
  const work = mkdtempSync(join(tmpdir(), "relay-metrics-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "relay_metrics");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("counts an event for every partition once per partition, summing to what the topic holds", { timeout: 120_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("relaymetrics");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 3 })));
    for (const sql of scaleWrites(0, 20)) await db.query(sql);
    const users = Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);
    const purchases = Number((await db.query("SELECT count(*) AS n FROM purchases")).rows[0]?.n);
    const http = `127.0.0.1:${await freePort()}`;
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http, maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const kafka = new Kafka({ clientId: "relay-metrics", brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const published = async () => {
        // The insert position: the test cluster runs synchronous_commit=off, so the write position may lag a commit.
        const { rows: lsn } = await db.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
        await waitFor("the relay published the writes", async () => {
          const { rows } = await db.query<{ ok: boolean }>(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`, [lsn[0]?.lsn, names.slot]);
          return rows[0]?.ok ? true : undefined;
        }, 60_000);
      };
      await published();
      await db.query("TRUNCATE purchases");
      await db.query("INSERT INTO purchases VALUES (1, 1, 10, 'successful', now())");
      await published();
      const text = (await get(http, "/metrics")).body;
      const counted = (op: string) => sample(text, `grouparoo_relay_events_total{model="users",op="${op}"}`);
      const held = (await admin.fetchTopicOffsets(names.topic)).reduce((n, o) => n + Number(o.high), 0);
      expect({ snapshot: counted("snapshot"), marker: counted("marker"), truncate: counted("truncate"), insert: counted("insert") }).toEqual({ snapshot: users + purchases, marker: 3, truncate: 3, insert: 1 });
      expect(users + purchases + 3 + 3 + 1).toBe(held);
    } finally {
      await admin.disconnect();
      await relay.drain("SIGTERM");
      await relay.finished;
    }
  });
});
