// A model whose primary source is postgres-cdc and whose aggregated source is a kafka-debezium topic
// (another app, another kind): config changes of the aggregated source (moved to another Kafka app,
// whose consumer reads the topic whole; its aggregate changed; an aggregate added) end, by a restart
// or a reload, as a fresh daemon on the new config over the same data (state and destination table).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Daemon } from "../../daemon/daemon.js";
import { concrete, dumpState, find, scenariosFor, SHOP_DATA, SHOP_SCHEMA, settle, shopConfig, start, stopAll, type Obj, type Running } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const kafka = new Kafka({ clientId: "converge-kafka-secondary", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });

/** The shop config with purchases read from `topic` on Kafka app `appId`, `edit` applied. */
function onKafka(topic: string, appId: string, groupId: string, edit?: (o: Obj[]) => void): Obj[] {
  const objects = structuredClone(shopConfig());
  objects.splice(1, 0, { class: "app", id: appId, type: "kafka", options: { brokers: testKafkaBrokers(), groupId } });
  Object.assign(find(objects, "purchases_table", "source"), { type: "kafka-debezium", appId, options: { topic, format: "json" } });
  edit?.(objects);
  return objects;
}

const purchase = (id: number, userId: number, amount: number, state: string) => ({ key: String(id), value: JSON.stringify({ id, user_id: userId, amount, state }) });

describe("a model's aggregated source on a Kafka topic, its primary on postgres-cdc", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "kafka_secondary");
  });
  afterEach(async () => {
    await db.drop();
  });

  const SCENARIOS: Record<string, (topic: string, group: string) => [Obj[], Obj[]]> = {
    "moved to another Kafka app": (topic, group) => [onKafka(topic, "bus", `${group}-a`), onKafka(topic, "bus2", `${group}-b`)],
    "a count changed to a sum": (topic, group) => [onKafka(topic, "bus", group), onKafka(topic, "bus", group, (o) => Object.assign(find(o, "purchase_count").options as Obj, { column: "amount", aggregationMethod: "sum" }))],
    "an aggregate added": (topic, group) => [
      onKafka(topic, "bus", group),
      onKafka(topic, "bus", group, (o) => o.push({ class: "property", id: "failed_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" }, filters: [{ key: "state", op: "eq", match: "failed" }] })),
    ],
  };

  for (const mode of ["restart", "reload"] as const) {
    it.each(scenariosFor(mode, Object.entries(SCENARIOS), new Set(["moved to another Kafka app"])).map(([name]) => name))(`by a ${mode}: %s`, { timeout: 120_000 }, async (name) => {
      const topic = `purchases-${randomBytes(4).toString("hex")}`;
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
      await admin.disconnect();
      const producer = kafka.producer();
      await producer.connect();
      const [a, b] = (SCENARIOS[name] as (t: string, g: string) => [Obj[], Obj[]])(topic, `g-${topic}`);
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      // Users 1 to 10 have purchases; 11 and 12 none.
      await producer.send({ topic, messages: Array.from({ length: 30 }, (_, i) => purchase(i + 1, 1 + (i % 10), (i * 7) % 50 + 1, i % 3 === 0 ? "failed" : "successful")) });
      const work = mkdtempSync(join(tmpdir(), "kafka-secondary-"));
      const file = join(work, "config.json");
      let running: Running | undefined;
      let oracle: Running | undefined;
      const ends = async () => {
        const x = kafka.admin();
        await x.connect();
        try {
          return await x.fetchTopicOffsets(topic);
        } finally {
          await x.disconnect();
        }
      };
      const readAll = async (d: Daemon, appId: string) => {
        const offsets = await ends();
        await waitFor(`the topic read by ${appId}`, async () => (offsets.every((e) => e.high === "0" || d.state.position(`kafka:${appId}:${topic}:${e.partition}`) === String(BigInt(e.high) - 1n)) && d.runs?.pending().length === 0 ? true : undefined), 60_000);
      };
      const appOf = (config: Obj[]) => String(find(config, "purchases_table", "source").appId);
      try {
        running = await start(file, concrete(a, db.url, "scenario", "crm"), join(work, "state"));
        await readAll(running.daemon, appOf(a));
        await settle(db, [running], "first config");
        const next = concrete(b, db.url, "scenario", "crm");
        if (mode === "restart") {
          await running.daemon.drain("SIGTERM");
          await running.daemon.finished;
          running = await start(file, next, running.state);
        } else {
          writeFileSync(file, JSON.stringify(next, null, 1));
          expect(await running.daemon.reload("test")).toBe("applied");
          running.destinations = ["crm"];
        }
        // The topic and the table keep changing while the Runs go on.
        await producer.send({ topic, messages: [purchase(31, 2, 40, "successful"), purchase(32, 11, 9, "failed"), purchase(5, 3, 12, "successful")] });
        await db.query(`INSERT INTO users (id, email, name) VALUES (13, 'u13@example.com', 'name13')`);
        await readAll(running.daemon, appOf(b));
        await settle(db, [running], "second config");
        // The new config on a Kafka app and consumer group of its own.
        const fresh = b.map((x) => (x.class === "app" && x.type === "kafka" ? { ...x, id: "oracle_bus", options: { ...(x.options as Obj), groupId: `oracle-${topic}` } } : x.id === "purchases_table" ? { ...x, appId: "oracle_bus" } : x));
        oracle = await start(join(work, "oracle.json"), concrete(fresh, db.url, "oracle", "crm_oracle"), join(work, "oracle-state"));
        await readAll(oracle.daemon, "oracle_bus");
        await settle(db, [oracle, running], "oracle and scenario");
        const dump = (r: Running) => dumpState(r.daemon.state, ["users"], [], ["high_value", "vips"], []);
        const state = dump(running);
        expect(state).toEqual(dump(oracle));
        expect((state.records as Record<string, { values: Obj }>)["users/12"]?.values.purchase_count).toBe(0);
        expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
      } finally {
        await producer.disconnect();
        await stopAll([running, oracle]);
        rmSync(work, { recursive: true, force: true });
      }
    });
  }
});
