// The relay confirms the slot only after the broker acknowledged the events (README, "Beyond one
// machine"): with the producer's acknowledgement held back, the slot's confirmed_flush_lsn stays
// before the first write's commit while the changes wait; once the broker has them (in the topic, keyed by record),
// the slot moves past them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { modelTopics } from "../../core/partitions.js";
import { RelayRouter, type RelayEvent } from "../../core/relay.js";
import { builtinComponents } from "../../connectors/registry.js";
import { RelayProducer } from "../../connectors/kafka/relay-producer.js";
import { createSources } from "../../daemon/connectors.js";
import { RelayState } from "../../state/relay.js";
import { relayFlow } from "../../streams/relay.js";
import { validConfig } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describe("the relay's acknowledgement", () => {
  const work = mkdtempSync(join(tmpdir(), "relay-ack-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("confirms the slot only once the broker acknowledged the events", { timeout: 90_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "relay_ack");
    const brokers = testKafkaBrokers();
    const names = scaleNames("ack");
    const config = validConfig(scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 3 }));
    const domain = (await import("../../core/domain.js")).compileDomain(config);
    const topics = modelTopics(config.models[0] as never);
    if (!topics) throw new Error("not partitioned");
    const state = RelayState.open(join(work, "relay"));
    const producer = new RelayProducer(config.apps.find((a) => a.id === "bus") as never, new Map([["users", topics]]), logger);
    let held: (() => void) | undefined;
    let holding = false;
    const sent: RelayEvent[] = [];
    let stopSources: () => Promise<void> = async () => undefined;
    const sink = {
      send: async (events: readonly RelayEvent[]) => {
        if (holding) await new Promise<void>((resolve) => (held = resolve));
        await producer.send(events, () => "shop");
        sent.push(...events);
      },
    };
    try {
      for (const sql of SCALE_SCHEMA) await db.query(sql);
      await producer.start();
      const { connectors } = createSources(config, builtinComponents(), state.allPositions(), logger, {});
      const flow = relayFlow(connectors, state, new RelayRouter(domain, new Set(["users"])), sink);
      stopSources = async () => {
        holding = false;
        held?.();
        flow.pipeline.drain();
        await Promise.all(connectors.map((c) => c.stop()));
        await flow.done.catch(() => undefined);
      };
      await waitFor("the slot streams", async () => ((await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active`, [names.slot])).rowCount === 1 ? true : undefined));
      const slot = async () => (await db.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [names.slot])).rows[0]?.lsn ?? "";
      const before = await db.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
      holding = true;
      await db.query(`INSERT INTO users (id, email) VALUES (1, 'a@b.c'), (2, 'b@b.c')`);
      await db.query(`INSERT INTO purchases (id, user_id, amount, state) VALUES (10, 2, 5, 'successful')`);
      const after = await db.query<{ lsn: string; inserted: string }>(`SELECT pg_current_wal_lsn()::text AS lsn, pg_current_wal_insert_lsn()::text AS inserted`);
      await waitFor("the batch waits for the broker", async () => (held ? true : undefined));
      await new Promise((r) => setTimeout(r, 1500));
      const whileHeld = await slot();
      // The slot may move past `before` while idle: `before` is the WAL's write position, and a
      // keepalive reports positions flushed since, which other databases of the cluster wrote
      // before the inserts (CI saw it). It never moves past the first insert's commit: that commit's
      // own WAL record, found by pg_walinspect, is the bound. The slot may reach the record's start
      // (CI saw it, 2026-12-02): Postgres decodes again a transaction whose commit record starts at or
      // after confirmed_flush_lsn (it skips only those before it), so that confirms nothing of it.
      await db.query(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`);
      const { rows: commitRows } = await db.query<{ lsn: string | null }>(
        `SELECT min(start_lsn)::text AS lsn FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
          WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AND xid::text = (SELECT xmin::text FROM users WHERE id = 1)`,
        [before.rows[0]?.lsn, after.rows[0]?.inserted],
      );
      const firstCommit = commitRows[0]?.lsn;
      if (!firstCommit) throw new Error("the first insert's commit record was not found in the WAL");
      const { rows: heldRows } = await db.query<{ ok: boolean }>(`SELECT $1::pg_lsn <= $2::pg_lsn AS ok`, [whileHeld, firstCommit]);
      expect({ whileHeld, firstCommit, ok: heldRows[0]?.ok }).toEqual({ whileHeld, firstCommit, ok: true });
      holding = false;
      held?.();
      await waitFor("the slot moves past the writes once acknowledged", async () => {
        const { rows } = await db.query<{ ok: boolean }>(`SELECT $1::pg_lsn >= $2::pg_lsn AS ok`, [await slot(), after.rows[0]?.lsn]);
        return rows[0]?.ok ? true : undefined;
      }, 30_000);
      // In the topic: users by id, the purchase by its user, all in the partition of their record.
      const kafka = new Kafka({ clientId: "relay-ack", brokers, logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      const offsets = await admin.fetchTopicOffsets(names.topic);
      await admin.disconnect();
      // An event for every partition (the end of the initial snapshot) is one message per partition.
      const messages = sent.reduce((n, e) => n + (e.target.kind === "every-partition" ? 3 : 1), 0);
      expect(offsets.reduce((n, p) => n + Number(p.high), 0)).toBe(messages);
      expect(sent.filter((e) => e.target.kind !== "record").map((e) => [e.target.kind, Boolean(e.change.snapshotComplete)])).toEqual([["every-partition", true]]);
      expect(sent.filter((e) => e.target.kind === "record").map((e) => [e.change.sourceId, e.change.key, e.target])).toEqual([
        ["users_table", "1", { kind: "record", key: "1" }],
        ["users_table", "2", { kind: "record", key: "2" }],
        ["purchases_table", "10", { kind: "record", key: "2" }],
      ]);
    } finally {
      await stopSources();
      await producer.stop();
      await state.close();
      await db.drop();
    }
  });
});
