// The broker restarted mid-stream: the kafka-debezium source resumes by itself and nothing is lost.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { kafkaDebeziumSource } from "../../connectors/kafka/debezium-source.js";
import { startKafka, type KafkaService } from "../services/kafka.js";
import { startSource, validConfig } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { envelope, key } from "../fixtures/debezium.js";

describe("kafka-debezium across a broker restart", () => {
  let broker: KafkaService;
  beforeAll(async () => {
    broker = await startKafka();
  }, 120_000);
  afterAll(async () => {
    await broker?.stop();
  });

  it("resumes consuming after the broker comes back, with every change applied", { timeout: 180_000 }, async () => {
    const kafka = new Kafka({ clientId: "restart-test", brokers: broker.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: "customers", numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    const send = async (from: number, to: number) => {
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic: "customers", acks: -1, messages: Array.from({ length: to - from }, (_, i) => ({ key: key(from + i, false), value: envelope("c", null, { id: from + i, score: from + i }, 1, false) })) });
      await producer.disconnect();
    };
    await send(0, 500);
    const run = startSource(
      validConfig([
        { class: "app", id: "bus", type: "kafka", options: { brokers: broker.brokers, groupId: "restart-group", sessionTimeoutMs: 6000 } },
        { class: "model", id: "customers" },
        { class: "source", id: "customers_topic", type: "kafka-debezium", appId: "bus", modelId: "customers", options: { topic: "customers" }, mapping: { id: "customer_id" } },
        { class: "property", id: "customer_id", type: "integer", unique: true, sourceId: "customers_topic", options: { column: "id" } },
        { class: "property", id: "score", type: "integer", sourceId: "customers_topic", options: { column: "score" } },
      ]),
      kafkaDebeziumSource,
    );
    try {
      await waitFor("first messages", async () => (run.store.countOf("records", "customers") === 500 ? true : undefined), 60_000);
      await broker.restart();
      await send(500, 1000);
      await waitFor("messages after the restart", async () => (run.store.countOf("records", "customers") === 1000 ? true : undefined), 120_000);
      const scores = [...run.store.recordsOf("customers")].map((r) => r.values.score).sort((a, b) => Number(a) - Number(b));
      expect(scores).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    } finally {
      await run.stop();
    }
  });
});
