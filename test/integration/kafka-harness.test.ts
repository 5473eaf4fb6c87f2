// Proves the Kafka test service: a message produced with kafkajs reaches a kafkajs consumer group.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel, type Consumer, type Producer } from "kafkajs";
import { testKafkaBrokers } from "../services/use.js";

describe("Kafka test service", () => {
  const suffix = randomBytes(4).toString("hex");
  const topic = `harness-${suffix}`;
  const groupId = `harness-group-${suffix}`;
  const kafka = new Kafka({ clientId: "harness-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
  let producer: Producer;
  let consumer: Consumer;

  beforeAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    producer = kafka.producer();
    consumer = kafka.consumer({ groupId });
    await producer.connect();
    await consumer.connect();
  });

  afterAll(async () => {
    await consumer?.disconnect();
    await producer?.disconnect();
  });

  it("delivers a produced message to a consumer group and commits its offset", async () => {
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = new Promise<{ key: string; value: string; partition: number; offset: string }>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message, partition }) => {
          resolve({ key: message.key?.toString() ?? "", value: message.value?.toString() ?? "", partition, offset: message.offset });
        },
      });
    });
    const [sent] = await producer.send({
      topic,
      acks: -1,
      messages: [{ key: "user-1", value: JSON.stringify({ id: 1, email: "ada@example.com" }) }],
    });
    const message = await received;
    expect(message).toEqual({
      key: "user-1",
      value: '{"id":1,"email":"ada@example.com"}',
      partition: sent?.partition,
      offset: sent?.baseOffset,
    });

    await consumer.stop();
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const committed = offsets?.partitions.find((p) => p.partition === message.partition)?.offset;
      expect(committed).toBe(String(Number(message.offset) + 1));
    } finally {
      await admin.disconnect();
    }
  });
});
