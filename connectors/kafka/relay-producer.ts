// The relay's producer (README, "Relay and workers"): an idempotent kafkajs producer with acks from all
// in-sync replicas, one send at a time, so a partition's events keep their order and a retried send
// is never written twice. `send` resolves once the broker acknowledged every event.
import type { Kafka, Message, Producer } from "kafkajs";
import type { Logger } from "pino";
import type { AppConfig } from "../../core/config/schema.js";
import type { ModelTopics } from "../../core/partitions.js";
import type { RelayEvent } from "../../core/relay.js";
import { kafkajs, kafkaClient } from "./app.js";
import { tooLargeForTopic } from "./errors.js";
import { ensureModelTopics } from "./model-topics.js";
import { encodeRelayEvent } from "./relay-codec.js";

/** Events per produce request, at most. */
const CHUNK = 2000;
/**
 * Bytes per produce request, at most (but for one event larger than that alone): each partition's
 * record batch in a request stays below the topic's max.message.bytes, 1 MiB by default, which the
 * broker compares with the whole batch. (Before 2026-12-03 only the count bounded a request: 2,000
 * events of 500 bytes for one partition, a customer's bulk insert, were refused with
 * MESSAGE_TOO_LARGE, the relay stopped, and started again it read the same batch and stopped again.)
 */
const REQUEST_BYTES = 512 * 1024;

/** A message's bytes as the broker counts them, near enough (its key, value and headers, plus their framing). */
function bytesOf(message: Message): number {
  let n = 64 + (message.value as Buffer).length + (message.key ? Buffer.byteLength(message.key as string) : 0);
  for (const [name, value] of Object.entries(message.headers ?? {})) n += name.length + Buffer.byteLength(String(value)) + 8;
  return n;
}

/**
 * How long a produce request may wait for the broker's acknowledgement before the relay reports
 * itself not ready (kafkajs retries it without end meanwhile, so a broker that is down or hung shows
 * nowhere else but in the replication lag).
 */
export const SEND_STALL_MS = 15_000;

export class RelayProducer {
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly partitions = new Map<string, number>();
  private connected = false;
  /** The produce request waiting for the broker, if any: when it was sent, where, how many events. */
  private waiting: { since: number; topic: string; events: number } | undefined;
  /** For tests: SEND_STALL_MS. */
  stallMs = SEND_STALL_MS;

  constructor(
    app: AppConfig,
    private readonly topics: ReadonlyMap<string, ModelTopics>,
    private readonly logger: Logger,
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

  /**
   * Why the relay cannot publish, for `/readyz`: not connected, or a produce request the broker has
   * not acknowledged for longer than `stallMs` (the broker down, hung or unreachable); null when fine.
   */
  problem(now = Date.now()): string | null {
    if (!this.connected) return "kafka not connected";
    const waiting = this.waiting;
    if (waiting && now - waiting.since > this.stallMs) {
      return `kafka not acknowledging: ${waiting.events} events sent to topic ${waiting.topic} have waited ${Math.round((now - waiting.since) / 1000)} s`;
    }
    return null;
  }

  /**
   * Publishes the events in order; resolves once every one is acknowledged by all in-sync replicas.
   * An event the topic refuses alone for its size (past the topic's max.message.bytes) cannot be
   * published ever: its record's partition gets a dead letter naming the source, the row, the size
   * and the topic instead, and the relay moves on.
   */
  async send(events: readonly RelayEvent[], appIdOf: (sourceId: string) => string): Promise<void> {
    const byTopic = new Map<string, { message: Message; event: RelayEvent }[]>();
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
        list.push({ message: { key, value, headers }, event });
      } else {
        const { value, headers } = encodeRelayEvent(event.change, null, appId);
        const to = target.kind === "every-partition" ? partitions : 1;
        for (let partition = 0; partition < to; partition += 1) list.push({ message: { key: null, value, headers, partition }, event });
      }
    }
    for (const [topic, messages] of byTopic) {
      let chunk: { message: Message; event: RelayEvent }[] = [];
      let bytes = 0;
      for (const entry of messages) {
        const size = bytesOf(entry.message);
        if (chunk.length > 0 && (chunk.length >= CHUNK || bytes + size > REQUEST_BYTES)) {
          await this.sendChunk(topic, chunk, appIdOf);
          chunk = [];
          bytes = 0;
        }
        chunk.push(entry);
        bytes += size;
      }
      if (chunk.length > 0) await this.sendChunk(topic, chunk, appIdOf);
    }
  }

  private async sendChunk(topic: string, chunk: readonly { message: Message; event: RelayEvent }[], appIdOf: (sourceId: string) => string): Promise<void> {
    try {
      await this.acknowledged(topic, chunk.map((c) => c.message));
    } catch (error) {
      if (!tooLargeForTopic(error)) throw error;
      if (chunk.length > 1) {
        // A topic that takes less than a request holds (its max.message.bytes set below 512 KiB): the
        // halves are sent in turn, in order. Partitions of the request the broker took get their
        // events again, as after a relay's restart: a worker applies them again and ends where it
        // was, though a replayed end of a snapshot may remove rows streamed after it in the request
        // until their events come again (a destination then sees them deleted and made again).
        const half = Math.ceil(chunk.length / 2);
        await this.sendChunk(topic, chunk.slice(0, half), appIdOf);
        await this.sendChunk(topic, chunk.slice(half), appIdOf);
        return;
      }
      const only = chunk[0] as { message: Message; event: RelayEvent };
      const { message, event } = only;
      const change = event.change;
      const bytes = bytesOf(message);
      const reason = `the relay cannot publish ${change.op} of row ${JSON.stringify(change.key)} of source "${change.sourceId}": its event is ${bytes} bytes, more than topic ${topic} takes (its max.message.bytes; raise it to publish such rows): ${(error as Error).message}`;
      this.logger.error({ topic, source: change.sourceId, row: change.key, op: change.op, bytes }, `${reason}; its record's partition gets a dead letter instead`);
      const letter = encodeRelayEvent(
        { sourceId: change.sourceId, op: "marker", key: "", before: null, after: null, position: change.position, commitTime: change.commitTime, deadLetter: { reason, payload: { topic, source: change.sourceId, row: change.key, op: change.op, bytes, lsn: change.position.position } } },
        message.key === null || message.key === undefined ? null : String(message.key),
        appIdOf(change.sourceId),
      );
      await this.acknowledged(topic, [{ key: letter.key, value: letter.value, headers: letter.headers, ...(message.partition === undefined ? {} : { partition: message.partition }) }]);
    }
  }

  /** One produce request, acknowledged by all in-sync replicas; `waiting` names it meanwhile. */
  private async acknowledged(topic: string, messages: Message[]): Promise<void> {
    this.waiting = { since: Date.now(), topic, events: messages.length };
    try {
      await this.producer.send({ topic, acks: -1, messages });
    } finally {
      this.waiting = undefined;
    }
  }

  async stop(): Promise<void> {
    this.connected = false;
    await this.producer.disconnect().catch(() => undefined);
  }
}
