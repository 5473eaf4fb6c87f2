// The relay's producer with a broker that stops answering (README, "Relay and workers", `/readyz`):
// kafkajs retries a produce request without end, so before 2026-12-03 a relay whose broker hung or
// went away stayed ready, and only its replication lag told. Now a request unacknowledged for longer
// than the stall bound makes it not ready, naming the topic and how long it waited; once the broker
// answers, the request completes (nothing lost) and the relay is ready again.
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change } from "../../core/change.js";
import { modelTopics } from "../../core/partitions.js";
import type { RelayEvent } from "../../core/relay.js";
import { RelayProducer } from "../../connectors/kafka/relay-producer.js";
import { decodeRelayEvent } from "../../connectors/kafka/relay-codec.js";
import { startKafka, type KafkaService } from "../services/kafka.js";
import { validConfig } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { scaleConfig, scaleNames } from "../helpers/scale.js";

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const purchase = (id: number): RelayEvent => {
  const change: Change = { sourceId: "purchases_table", op: "insert", key: String(id), before: null, after: { id, user_id: 3, amount: "1.5" }, position: { stream: "postgres:shop", position: `0/${id}` }, commitTime: 0 };
  return { modelId: "users", target: { kind: "record", key: "3" }, change };
};

describe("the relay's producer with a broker that stops answering", () => {
  let broker: KafkaService;
  beforeAll(async () => {
    broker = await startKafka();
  }, 120_000);
  afterAll(async () => {
    broker?.thaw();
    await broker?.stop();
  });

  it("is not ready while a send waits past the stall bound, and ready again once the broker acknowledges it", { timeout: 120_000 }, async () => {
    const names = scaleNames("relaystall");
    const config = validConfig(scaleConfig("postgres://127.0.0.1:1/none", broker.brokers, names, { partitioned: true, partitions: 2 }));
    const topics = modelTopics(config.models[0] as never);
    if (!topics) throw new Error("not partitioned");
    const producer = new RelayProducer(config.apps.find((a) => a.id === "bus") as never, new Map([["users", topics]]), logger);
    producer.stallMs = 2000;
    await producer.start();
    try {
      await producer.send([purchase(1)], () => "shop");
      expect(producer.problem()).toBeNull();

      broker.freeze();
      let sent = false;
      const sending = producer.send([purchase(2), purchase(3)], () => "shop").then(() => (sent = true));
      // Within the bound the relay stays ready: a slow acknowledgement is not an outage.
      await new Promise((r) => setTimeout(r, 1000));
      expect(producer.problem()).toBeNull();
      await waitFor("the relay not ready", async () => producer.problem() ?? undefined, 10_000);
      expect(producer.problem()).toMatch(new RegExp(`^kafka not acknowledging: 2 events sent to topic ${topics.topic} have waited \\d+ s$`));
      expect(sent).toBe(false);

      broker.thaw();
      await sending;
      expect(producer.problem()).toBeNull();

      const kafka = new Kafka({ clientId: "relay-stall", brokers: broker.brokers, logLevel: logLevel.NOTHING });
      const keys: string[] = [];
      const consumer = kafka.consumer({ groupId: `${topics.topic}-check`, maxWaitTimeInMs: 200 });
      await consumer.connect();
      await consumer.subscribe({ topics: [topics.topic], fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const decoded = decodeRelayEvent(message.value, message.headers);
          if (!decoded.ok) throw new Error(decoded.reason);
          keys.push(decoded.change.key);
        },
      });
      await waitFor("three events read back", async () => (keys.length >= 3 ? true : undefined), 30_000);
      await consumer.disconnect();
      expect(keys).toEqual(["1", "2", "3"]);
    } finally {
      await producer.stop();
    }
  });
});
