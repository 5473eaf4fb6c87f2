// A changelog topic made beforehand with the cluster's default cleanup.policy (delete, a week's
// retention) loses every state key's last write once it is a week old: a restore then misses every
// record that had not changed since, without a word. The worker refuses it at start (exit 70, naming
// the topic, its policy and retention, and the fix); a compacted one, or one that keeps everything,
// is taken.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureModelTopics } from "../../connectors/kafka/model-topics.js";
import { Worker } from "../../daemon/worker.js";
import { freePort } from "../services/process.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

describe("a changelog topic made beforehand", () => {
  const work = mkdtempSync(join(tmpdir(), "changelog-retention-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "changelog_retention");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("with cleanup.policy delete is refused by the worker with 70, naming it", { timeout: 90_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("clretention");
    const kafka = new Kafka({ clientId: "changelog-retention", brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: `${names.topic}.changelog`, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 2 })));
    const lines: string[] = [];
    const code = await Worker.start({ config: file, state: join(work, "worker"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "info" }, { write: (line: string) => void lines.push(line) }));
    if (typeof code !== "number") {
      await code.drain("SIGTERM");
      await code.finished;
    }
    const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50);
    expect({ code: typeof code === "number" ? code : "started", message: errors[0]?.msg }).toEqual({
      code: 70,
      message: `model "users": changelog ${names.topic}.changelog has cleanup.policy=delete with retention.ms=604800000 and retention.bytes=-1: Kafka would delete partition states' records past that retention, and a restore would miss every record that had not changed since; make it compacted (kafka-configs --alter --entity-type topics --entity-name ${names.topic}.changelog --add-config cleanup.policy=compact) or delete it for the workers to create it`,
    });
  });

  it("compacted, or keeping everything, is taken", { timeout: 60_000 }, async () => {
    const kafka = new Kafka({ clientId: "changelog-retention", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      for (const configEntries of [[{ name: "cleanup.policy", value: "compact" }], [{ name: "retention.ms", value: "-1" }]]) {
        const topic = `clretention-ok-${randomBytes(4).toString("hex")}`;
        await admin.createTopics({ topics: [{ topic: `${topic}.changelog`, numPartitions: 2, configEntries }], waitForLeaders: true });
        await expect(ensureModelTopics(admin, { modelId: "users", appId: "bus", topic, changelogTopic: `${topic}.changelog`, partitions: 2, replicationFactor: 1 }, true)).resolves.toBe(2);
      }
    } finally {
      await admin.disconnect();
    }
  });
  it("a model topic made beforehand compacted is refused, naming it (the relay's keyless events would be refused there)", { timeout: 60_000 }, async () => {
    const kafka = new Kafka({ clientId: "changelog-retention", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const topic = `compacted-model-${randomBytes(4).toString("hex")}`;
      await admin.createTopics({ topics: [{ topic, numPartitions: 2, configEntries: [{ name: "cleanup.policy", value: "compact" }] }], waitForLeaders: true });
      await expect(ensureModelTopics(admin, { modelId: "users", appId: "bus", topic, changelogTopic: `${topic}.changelog`, partitions: 2, replicationFactor: 1 }, false)).rejects.toThrow(
        `model "users": topic ${topic} has cleanup.policy=compact: Kafka refuses the relay's events without a key there (truncates, the ends of snapshots); make it cleanup.policy=delete (kafka-configs --alter --entity-type topics --entity-name ${topic} --add-config cleanup.policy=delete) with a retention the workers keep up with, or delete it for the relay to create it`,
      );
    } finally {
      await admin.disconnect();
    }
  });
});
