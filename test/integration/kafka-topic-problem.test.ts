// The kafka-topic destination and errors retrying cannot fix (connectors/kafka/errors.ts: SASL or
// authorization refused, an invalid topic): the destination's own problem, as a missing table is for
// postgres-table. problem() names it (so /readyz and /status do), ready() is false, and Delivery keeps
// its exports past --max-attempts instead of dead-lettering them (they are fine); a send that goes
// through clears it. Before, such an error was retried as any other: every export of the outbox
// became a dead letter after --max-attempts, and /readyz said ready.
import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { KafkaTopicDestination } from "../../connectors/kafka/topic.js";
import { DeliveryError } from "../../connectors/types.js";
import { exportOf } from "../helpers/exports.js";
import { testKafkaBrokers } from "../services/use.js";

const exported = (seq: number) => exportOf(seq, { destinationId: "stream" });

describe("the kafka-topic destination's own problems", () => {
  it("names a SASL refusal as its problem (not ready, retried), and an invalid topic; a send that goes through clears it", { timeout: 60_000 }, async () => {
    const brokers = testKafkaBrokers();
    // The test broker speaks no SASL: a client that asks for it is refused for good.
    const refused = new Kafka({ clientId: "kafka-topic-problem", brokers, logLevel: logLevel.NOTHING, retry: { retries: 1 }, sasl: { mechanism: "plain", username: "crm", password: "wrong" } });
    const topic = `exports-problem-${randomBytes(4).toString("hex")}`;
    const sasl = new KafkaTopicDestination("stream", refused, topic);
    try {
      const error = await sasl.deliver([exported(1)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeliveryError);
      expect({ retryable: (error as DeliveryError).retryable, problem: sasl.problem(), ready: sasl.ready() }).toEqual({
        retryable: true,
        problem: `producing to ${topic} failed: Request is not valid given the current SASL state`,
        ready: false,
      });
    } finally {
      await sasl.stop();
    }
    // An invalid topic (a name the config check now refuses; a plugin or an older state may still hold one).
    const kafka = new Kafka({ clientId: "kafka-topic-problem", brokers, logLevel: logLevel.NOTHING, retry: { retries: 1 } });
    const invalid = new KafkaTopicDestination("stream", kafka, "bad topic!");
    try {
      const error = await invalid.deliver([exported(2)]).catch((e: unknown) => e);
      expect({ retryable: (error as DeliveryError).retryable, problem: invalid.problem(), ready: invalid.ready() }).toEqual({
        retryable: true,
        problem: "producing to bad topic! failed: The request attempted to perform an operation on an invalid topic",
        ready: false,
      });
    } finally {
      await invalid.stop();
    }
    // A transient failure is no problem of its own, and a send that goes through leaves none.
    const good = new KafkaTopicDestination("stream", kafka, topic);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
      expect(await good.deliver([exported(3)])).toEqual([{ seq: 3, status: "ok" }]);
      expect({ problem: good.problem(), ready: good.ready() }).toEqual({ problem: null, ready: true });
    } finally {
      await good.stop();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});

describe("the kafka-topic destination's readiness", () => {
  it("is not ready after a send failed for want of a broker (it said ready: /readyz never named it)", { timeout: 60_000 }, async () => {
    const { freePort } = await import("../services/process.js");
    const down = new Kafka({ clientId: "kafka-topic-down", brokers: [`127.0.0.1:${await freePort()}`], logLevel: logLevel.NOTHING, retry: { retries: 1, initialRetryTime: 50, maxRetryTime: 100 }, connectionTimeout: 500 });
    const destination = new KafkaTopicDestination("stream", down, "exports-down");
    try {
      expect(destination.ready()).toBe(true);
      const error = await destination.deliver([exported(1)]).catch((e: unknown) => e);
      expect({ retryable: (error as DeliveryError).retryable, problem: destination.problem(), ready: destination.ready() }).toEqual({ retryable: true, problem: null, ready: false });
    } finally {
      await destination.stop();
    }
  });
});
