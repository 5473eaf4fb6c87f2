// The kafka-topic destination and its topic's size limit: a batch the broker refuses for its size
// (past the topic's max.message.bytes) is refused as a whole, not retried as it is, so that Delivery
// splits it (the exports that fit go, one too large alone becomes a dead letter at once, naming the
// limit). Before, it was retried unchanged up to --max-attempts and every export of it dead-lettered.
import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { KafkaTopicDestination } from "../../connectors/kafka/topic.js";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { testKafkaBrokers } from "../services/use.js";

const exported = (seq: number, bytes: number): DeliverableExport => ({
  seq,
  destinationId: "stream",
  recordId: String(seq),
  oldRecordProperties: {},
  newRecordProperties: { id: seq, notes: "n".repeat(bytes) },
  oldGroups: [],
  newGroups: [],
  toDelete: false,
  updateOnly: false,
  commitTime: 0,
});

describe("the kafka-topic destination", () => {
  it("refuses a batch too large for its topic as a whole, and delivers what fits", { timeout: 60_000 }, async () => {
    const kafka = new Kafka({ clientId: "kafka-topic-size", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
    const topic = `exports-size-${randomBytes(4).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const destination = new KafkaTopicDestination("stream", kafka, topic);
    try {
      const refused = await destination.deliver([exported(1, 100), exported(2, 2 * 1024 * 1024)]).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(DeliveryError);
      expect({ retryable: (refused as DeliveryError).retryable, message: (refused as DeliveryError).message }).toEqual({
        retryable: false,
        message: `producing to ${topic} failed: The request included a message larger than the max message size the server will accept (the topic's max.message.bytes)`,
      });
      // The broker answered: still ready (before, it read as unreachable until another export went through,
      // and /readyz named a healthy destination when the last export was the one too large).
      expect({ ready: destination.ready(), problem: destination.problem() }).toEqual({ ready: true, problem: null });
      // Split: the one that fits goes.
      expect(await destination.deliver([exported(1, 100)])).toEqual([{ seq: 1, status: "ok" }]);
      expect((await admin.fetchTopicOffsets(topic))[0]?.high).toBe("1");
    } finally {
      await destination.stop();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
