// The relay's producer against the broker's size limit (README, "The relay"): a batch of events whose
// bytes for one partition pass the topic's max.message.bytes (1 MiB by default) is sent in requests
// that each fit, so a snapshot or a transaction of wide rows is published instead of stopping the
// relay (which, started again, read the same batch and failed again); a row larger than its topic
// takes at all becomes a dead letter in its record's partition, and the events after it are published.
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Change } from "../../core/change.js";
import { modelTopics, type ModelTopics } from "../../core/partitions.js";
import type { RelayEvent } from "../../core/relay.js";
import { RelayProducer } from "../../connectors/kafka/relay-producer.js";
import { decodeRelayEvent } from "../../connectors/kafka/relay-codec.js";
import { validConfig } from "../helpers/cdc.js";
import { scaleConfig, scaleNames } from "../helpers/scale.js";
import { testKafkaBrokers } from "../services/use.js";

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const purchase = (id: number, userId: number, bytes: number): RelayEvent => {
  const change: Change = { sourceId: "purchases_table", op: "insert", key: String(id), before: null, after: { id, user_id: userId, amount: "1.5", state: "x".repeat(bytes) }, position: { stream: "postgres:shop", position: `0/${id}` }, commitTime: 0 };
  return { modelId: "users", target: { kind: "record", key: String(userId) }, change };
};

async function setUp(partitions: number): Promise<{ brokers: string[]; kafka: Kafka; topics: ModelTopics; producer: RelayProducer }> {
  const brokers = testKafkaBrokers();
  const names = scaleNames("relaysize");
  const config = validConfig(scaleConfig("postgres://127.0.0.1:1/none", brokers, names, { partitioned: true, partitions }));
  const topics = modelTopics(config.models[0] as never);
  if (!topics) throw new Error("not partitioned");
  const producer = new RelayProducer(config.apps.find((a) => a.id === "bus") as never, new Map([["users", topics]]), logger);
  return { brokers, kafka: new Kafka({ clientId: "relay-size", brokers, logLevel: logLevel.NOTHING }), topics, producer };
}

/** Every message of the topic, decoded, with its partition. */
async function readAll(kafka: Kafka, topic: string): Promise<{ partition: number; key: string | null; change: Omit<Change, "position"> }[]> {
  const admin = kafka.admin();
  await admin.connect();
  const total = (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  await admin.disconnect();
  const seen: { partition: number; key: string | null; change: Omit<Change, "position"> }[] = [];
  const consumer = kafka.consumer({ groupId: `${topic}-check`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const decoded = decodeRelayEvent(message.value, message.headers);
      if (!decoded.ok) throw new Error(decoded.reason);
      seen.push({ partition, key: message.key?.toString() ?? null, change: decoded.change });
    },
  });
  const deadline = Date.now() + 30_000;
  while (seen.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect();
  return seen;
}

describe("the relay's producer", () => {
  it("publishes a batch of wide rows bound for one partition past the broker's 1 MiB default", { timeout: 90_000 }, async () => {
    const { kafka, topics, producer } = await setUp(2);
    await producer.start();
    try {
      // 3,000 purchases of one user (one partition), about 2 KB each: 6 MB for that partition, in one batch.
      await producer.send(Array.from({ length: 3000 }, (_, i) => purchase(i + 1, 7, 2000)), () => "shop");
      // A row of 2 MB: the model topic takes it whole.
      await producer.send([purchase(5000, 7, 2 * 1024 * 1024)], () => "shop");
      const seen = await readAll(kafka, topics.topic);
      expect(seen.length).toBe(3001);
      expect(new Set(seen.map((s) => s.partition)).size).toBe(1);
      expect(seen.map((s) => s.change.key)).toEqual([...Array.from({ length: 3000 }, (_, i) => String(i + 1)), "5000"]);
      expect(seen.every((s) => s.key === "7" && s.change.op === "insert" && s.change.deadLetter === undefined)).toBe(true);
    } finally {
      await producer.stop();
    }
  });

  it("publishes every event, in order, to a topic that takes less than a request holds", { timeout: 90_000 }, async () => {
    const { kafka, topics, producer } = await setUp(2);
    // Made beforehand with max.message.bytes 100,000: a request of 512 KiB is refused whole.
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: topics.topic, numPartitions: 2, configEntries: [{ name: "max.message.bytes", value: "100000" }] }], waitForLeaders: true });
    await admin.disconnect();
    await producer.start();
    try {
      await producer.send(Array.from({ length: 300 }, (_, i) => purchase(i + 1, 9, 2000)), () => "shop");
      const seen = await readAll(kafka, topics.topic);
      expect(seen.map((s) => s.change.key)).toEqual(Array.from({ length: 300 }, (_, i) => String(i + 1)));
      expect(seen.every((s) => s.key === "9" && s.change.op === "insert")).toBe(true);
    } finally {
      await producer.stop();
    }
  });

  it("sets a row its topic cannot take aside as a dead letter in its record's partition, and goes on", { timeout: 90_000 }, async () => {
    const { kafka, topics, producer } = await setUp(3);
    // The topic as an earlier version made it: the broker's default max.message.bytes (1 MiB).
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: topics.topic, numPartitions: 3 }], waitForLeaders: true });
    await admin.disconnect();
    await producer.start();
    try {
      await producer.send([purchase(1, 4, 100), purchase(2, 4, 2 * 1024 * 1024), purchase(3, 4, 100)], () => "shop");
      const seen = await readAll(kafka, topics.topic);
      expect(seen.map((s) => [s.key, s.change.op, s.change.key])).toEqual([
        ["4", "insert", "1"],
        ["4", "marker", ""],
        ["4", "insert", "3"],
      ]);
      const letter = seen[1]?.change.deadLetter;
      expect(letter?.payload).toEqual({ topic: topics.topic, source: "purchases_table", row: "2", op: "insert", bytes: expect.any(Number), lsn: "0/2" });
      expect((letter?.payload as { bytes: number }).bytes).toBeGreaterThan(2 * 1024 * 1024);
      expect(letter?.reason).toMatch(new RegExp(`^the relay cannot publish insert of row "2" of source "purchases_table": its event is \\d+ bytes, more than topic ${topics.topic} takes`));
    } finally {
      await producer.stop();
    }
  });
});
