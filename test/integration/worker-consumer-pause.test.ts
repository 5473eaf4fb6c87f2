// The workers' consumer pauses a partition while its task holds its bound (README, "The workers").
// With every partition it owns paused, kafkajs's fetcher sleeps its maxWaitTime, which a resume does
// not cut short: at kafkajs's default, 5 s of reading lost after each pause. The consumer waits at
// most 500 ms.
import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { AppConfig } from "../../core/config/schema.js";
import { WorkerConsumer, type PartitionBatch } from "../../connectors/kafka/worker-consumer.js";
import { waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

describe("the workers' consumer", () => {
  it("reads a partition again as soon as it is resumed after every partition it owns was paused", { timeout: 60_000 }, async () => {
    const brokers = testKafkaBrokers();
    const kafka = new Kafka({ clientId: "worker-consumer-pause", brokers, logLevel: logLevel.NOTHING });
    const topic = `worker-pause-${randomBytes(4).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    const received: string[] = [];
    let joined = false;
    const app = { class: "app", id: "bus", type: "kafka", options: { brokers, groupId: `g-${topic}` } } as unknown as AppConfig;
    const consumer = new WorkerConsumer(app, [topic], () => ({ firstSourceId: "users_table" }), {
      rebalancing: () => undefined,
      assigned: (assignment) => (joined = (assignment.get(topic)?.length ?? 0) > 0),
      batch: async (batch: PartitionBatch) => void received.push(...batch.changes.map((c) => c.position.position)),
    }, pino({ level: "silent" }));
    try {
      await consumer.start();
      await producer.send({ topic, messages: [{ key: "1", value: "not a relay event" }] });
      await waitFor("the first message", async () => (joined && received.length === 1 ? true : undefined), 30_000);
      consumer.pause(topic, 0, true);
      // Long enough for the fetcher to find every partition paused and go to sleep.
      await new Promise((r) => setTimeout(r, 1500));
      await producer.send({ topic, messages: [{ key: "2", value: "not a relay event" }] });
      await new Promise((r) => setTimeout(r, 1000));
      expect(received).toEqual(["0"]);
      consumer.pause(topic, 0, false);
      // Well under kafkajs's default of 5 s: a fetcher asleep that long would miss it.
      await waitFor("the message held while paused", async () => (received.length === 2 ? true : undefined), 3000);
      expect(received).toEqual(["0", "1"]);
    } finally {
      await consumer.stop();
      await producer.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
