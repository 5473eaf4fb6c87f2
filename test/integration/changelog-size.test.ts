// A partition's changelog against the broker's size limit (README, "The workers"): one Kafka
// transaction of many large state writes (a batch over records of many properties, their outbox
// entries) is sent in requests that each fit the changelog's max.message.bytes (16 MiB), and a restore
// reads every record back. Before, 5,000 records made one request whatever their size: past 16 MiB the
// broker refused it, the partition was given up, and the worker exited 70 at every start on that batch.
import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ChangelogReader, PartitionChangelog } from "../../connectors/kafka/changelog.js";
import { ensureModelTopics } from "../../connectors/kafka/model-topics.js";
import type { ChangelogRecord } from "../../core/partitions.js";
import { testKafkaBrokers } from "../services/use.js";

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describe("a partition's changelog", () => {
  it("commits a transaction of 24 MB of records, and a restore reads them all", { timeout: 120_000 }, async () => {
    const tag = randomBytes(4).toString("hex");
    const topic = `changelog-size-${tag}`;
    const groupId = `changelog-size-${tag}`;
    const kafka = new Kafka({ clientId: "changelog-size", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const topics = { modelId: "users", appId: "bus", topic, changelogTopic: `${topic}.changelog`, partitions: 2, replicationFactor: 1 };
    await ensureModelTopics(admin, topics, true);
    const changelog = new PartitionChangelog(kafka, admin, { changelogTopic: topics.changelogTopic, inputTopic: topic, groupId, partition: 1 });
    const reader = new ChangelogReader(kafka, admin, topics.changelogTopic, groupId, logger);
    try {
      await changelog.claim();
      // 6,000 state keys of 4 KB each.
      const records: ChangelogRecord[] = Array.from({ length: 6000 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(4096, i % 251) }));
      await changelog.commit(records, "1", "txn-1");
      const { nonce } = await changelog.claim();
      await reader.start();
      const restored = new Map<string, Buffer | null>();
      const count = await reader.restore(1, nonce, async (batch) => {
        for (const r of batch) restored.set(r.key.toString(), r.value);
      });
      expect(count).toBe(6000);
      expect(restored.size).toBe(6000);
      expect(restored.get("k5999")?.equals(Buffer.alloc(4096, 5999 % 251))).toBe(true);
      const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
      expect(offsets?.partitions.find((p) => p.partition === 1)).toMatchObject({ offset: "1", metadata: `txn-1@${topics.changelogTopic}` });
    } finally {
      await reader.stop();
      await changelog.close();
      await admin.disconnect();
    }
  });

  it("refusing a state record larger than its max.message.bytes, names the record, its size and the fix", { timeout: 120_000 }, async () => {
    const tag = randomBytes(4).toString("hex");
    const topic = `changelog-huge-${tag}`;
    const kafka = new Kafka({ clientId: "changelog-size", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const topics = { modelId: "users", appId: "bus", topic, changelogTopic: `${topic}.changelog`, partitions: 1, replicationFactor: 1 };
    await ensureModelTopics(admin, topics, true);
    const changelog = new PartitionChangelog(kafka, admin, { changelogTopic: topics.changelogTopic, inputTopic: topic, groupId: `changelog-huge-${tag}`, partition: 0 });
    try {
      await changelog.claim();
      const key = JSON.stringify(["records", ["users", "42"]]);
      const huge = { key: Buffer.from(key), value: Buffer.alloc(17 * 1024 * 1024, 1) };
      await expect(changelog.commit([{ key: Buffer.from("small"), value: Buffer.from("x") }, huge], "1", "txn-1")).rejects.toThrow(
        `changelog ${topics.changelogTopic} refused partition 0's state record ${key} of ${huge.key.length + huge.value.length} bytes as larger than its max.message.bytes (The request included a message larger than the max message size the server will accept): raise it (kafka-configs --alter --entity-type topics --entity-name ${topics.changelogTopic} --add-config max.message.bytes=<bytes>) and start the worker again`,
      );
    } finally {
      await changelog.close();
      await admin.disconnect();
    }
  });
});
