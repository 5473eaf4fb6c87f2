// A kafka app whose sessionTimeoutMs the broker refuses (past its group.max.session.timeout.ms, 30
// minutes by default): the consumer can never join its group, whatever the retries. The
// kafka-debezium source names it as the app's problem (/readyz, logged at error) instead of warning
// that it starts the consumer again, every few seconds, with /readyz giving no reason.
import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { kafkaDebeziumSource } from "../../connectors/kafka/debezium-source.js";
import { startSource, validConfig } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

describe("kafka-debezium with a session timeout the broker refuses", () => {
  it("names the refusal as the app's problem", { timeout: 60_000 }, async () => {
    // The topic is there (the consumer makes none, and waits for a topic not made yet without joining).
    const admin = new Kafka({ clientId: "session-timeout-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: "session-timeout-customers" }], waitForLeaders: true });
    await admin.disconnect();
    const run = startSource(
      validConfig([
        { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId: "session-timeout-group", sessionTimeoutMs: 1_900_000 } },
        { class: "model", id: "customers" },
        { class: "source", id: "customers_topic", type: "kafka-debezium", appId: "bus", modelId: "customers", options: { topic: "session-timeout-customers" }, mapping: { id: "customer_id" } },
        { class: "property", id: "customer_id", type: "integer", unique: true, sourceId: "customers_topic", options: { column: "id" } },
      ]),
      kafkaDebeziumSource,
    );
    try {
      const problem = await waitFor("the app's problem", async () => run.connector.problem?.() ?? undefined, 30_000).catch(() => null);
      expect(problem).toMatch(/^The session timeout is not within the range allowed by the broker/);
    } finally {
      await run.stop();
    }
  });
});
