// kafka-topic destination: one message per export, keyed by record id, the export as JSON; a
// tombstone (null value) when the record is deleted remotely. Idempotent producer, acks from all
// in-sync replicas; a failed send is retried. A topic name Kafka refuses is a config error; an error
// retrying cannot fix (authorization or SASL refused, an invalid topic) is the destination's own
// problem, named on /readyz, its exports retried until it is fixed rather than dead-lettered.
import type { Kafka, Producer } from "kafkajs";
import { Type, type Static } from "@sinclair/typebox";
import { DeliveryError, type DeliverableExport, type DestinationComponent, type DestinationConnector, type ExportResult } from "../types.js";
import { topicName } from "../../core/config/schema.js";
import { kafkaClient } from "./app.js";
import { classifyKafkaError, tooLargeForTopic } from "./errors.js";

export const KafkaTopicOptions = Type.Object(
  { topic: topicName("Topic written, keyed by record; a tombstone on delete.") },
  { additionalProperties: false },
);
type KafkaTopicOptions = Static<typeof KafkaTopicOptions>;

export class KafkaTopicDestination implements DestinationConnector {
  private readonly producer: Producer;
  private connected: Promise<void> | undefined;
  /** False from a failed send until one goes through (nothing known against it before the first). */
  private reachable = true;
  /** An error retrying cannot fix (errors.ts: authorization or SASL refused, an invalid topic), until a send goes through. */
  private failing: string | null = null;

  constructor(
    readonly destinationId: string,
    kafka: Kafka,
    private readonly topic: string,
  ) {
    this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  }

  async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
    try {
      this.connected ??= this.producer.connect();
      await this.connected;
      await this.producer.send({
        topic: this.topic,
        acks: -1,
        messages: batch.map((e) => ({ key: e.recordId, value: e.toDelete ? null : JSON.stringify(e) })),
      });
      this.reachable = true;
      this.failing = null;
    } catch (error) {
      // A batch the topic refuses for its size (past its max.message.bytes) is refused as a whole:
      // Delivery splits it until the exports that fit go and one too large alone becomes a dead letter.
      // (Before 2026-12-03 it was retried as it was, and every export of the batch became a dead letter.)
      // The broker answered: the destination stays reachable, its connection kept.
      if (tooLargeForTopic(error)) throw new DeliveryError(`producing to ${this.topic} failed: ${(error as Error).message} (the topic's max.message.bytes)`, false);
      this.reachable = false;
      this.connected = undefined;
      const { permanent, reason } = classifyKafkaError(error);
      this.failing = permanent ? `producing to ${this.topic} failed: ${reason}` : null;
      throw new DeliveryError(`producing to ${this.topic} failed: ${(error as Error).message}`, true);
    }
    return batch.map((e) => ({ seq: e.seq, status: "ok" }));
  }

  ready(): boolean {
    return this.reachable && this.failing === null;
  }

  problem(): string | null {
    return this.failing;
  }

  async stop(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
  }
}

export const kafkaTopicDestination: DestinationComponent = {
  type: "kafka-topic",
  appType: "kafka",
  options: KafkaTopicOptions,
  metrics: [],
  check(destination) {
    const { topic } = destination.options as KafkaTopicOptions;
    if (topic === "." || topic === "..") return [{ field: ["options", "topic"], message: `"${topic}" is not a name Kafka gives a topic` }];
    return [];
  },
  create(destination, app, context) {
    return new KafkaTopicDestination(destination.id, kafkaClient(app, context.logger), (destination.options as KafkaTopicOptions).topic);
  },
};
