// The relay's producer (README, "Relay and workers"): an idempotent kafkajs producer with acks from all
// in-sync replicas, one send at a time, so a partition's events keep their order and a retried send
// is never written twice. `send` resolves once the broker acknowledged every event.
import type { Kafka, Message, Producer } from "kafkajs";
import type { Logger } from "pino";
import type { AppConfig } from "../../core/config/schema.js";
import type { ModelTopics } from "../../core/partitions.js";
import type { RelayEvent } from "../../core/relay.js";
import { kafkajs, kafkaClient } from "./app.js";
import { ensureModelTopics } from "./model-topics.js";
import { encodeRelayEvent } from "./relay-codec.js";

/** Events per produce request: a request per partition stays well below the broker's 1 MiB default. */
const CHUNK = 2000;

export class RelayProducer {
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly partitions = new Map<string, number>();
  private connected = false;

  constructor(
    app: AppConfig,
    private readonly topics: ReadonlyMap<string, ModelTopics>,
    logger: Logger,
  ) {
    this.kafka = kafkaClient(app, logger);
    // Retried without end: nothing is acknowledged to the slot until the broker has the events.
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: kafkajs().Partitioners.DefaultPartitioner, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 10_000 } });
  }

  /** Connects and creates the models' topics when missing. */
  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      for (const topics of this.topics.values()) this.partitions.set(topics.modelId, await ensureModelTopics(admin, topics, false));
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await this.producer.connect();
    this.connected = true;
  }

  ready(): boolean {
    return this.connected;
  }

  /** Publishes the events in order; resolves once every one is acknowledged by all in-sync replicas. */
  async send(events: readonly RelayEvent[], appIdOf: (sourceId: string) => string): Promise<void> {
    const byTopic = new Map<string, Message[]>();
    for (const event of events) {
      const topics = this.topics.get(event.modelId);
      if (!topics) continue;
      const list = byTopic.get(topics.topic) ?? [];
      byTopic.set(topics.topic, list);
      const partitions = this.partitions.get(event.modelId) ?? topics.partitions;
      const appId = appIdOf(event.change.sourceId);
      const target = event.target;
      if (target.kind === "record") {
        const { key, value, headers } = encodeRelayEvent(event.change, target.key, appId);
        list.push({ key, value, headers });
      } else {
        const { value, headers } = encodeRelayEvent(event.change, null, appId);
        const to = target.kind === "every-partition" ? partitions : 1;
        for (let partition = 0; partition < to; partition += 1) list.push({ key: null, value, headers, partition });
      }
    }
    for (const [topic, messages] of byTopic) {
      for (let i = 0; i < messages.length; i += CHUNK) {
        await this.producer.send({ topic, acks: -1, messages: messages.slice(i, i + CHUNK) });
      }
    }
  }

  async stop(): Promise<void> {
    this.connected = false;
    await this.producer.disconnect().catch(() => undefined);
  }
}
