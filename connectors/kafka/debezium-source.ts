// kafka-debezium: one kafkajs consumer (one consumer group) per kafka app, covering its
// kafka-debezium sources. eachBatch with manual offsets: a partition's batch is decoded into changes,
// the handler waits until the core reports them durable (heartbeating meanwhile), and only then
// resolves and commits the offsets; so a rebalance, which waits for eachBatch, commits the batch in
// flight first. Backpressure pauses the partitions. A message that cannot be decoded becomes a
// dead letter in the same transaction that moves the offset past it (and optionally a DLQ message).
// kafkajs stays behind this file: a KafkaJS-compatible client can replace it without touching the core.
import { Type, type Static } from "@sinclair/typebox";
import { Kafka, type Consumer, type EachBatchPayload, type Producer } from "kafkajs";
import type { Logger } from "pino";
import { literals } from "../../core/config/schema.js";
import type { AppConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import { METRICS } from "../../metrics/names.js";
import { ChangeReader } from "../reader.js";
import type { SourceComponent, SourceContext, SourceObserver } from "../types.js";
import { kafkaClientConfig, type KafkaAppOptions } from "./app.js";
import { decodeMessage, type DebeziumFormat } from "./decode.js";

export const KafkaDebeziumOptions = Type.Object(
  {
    topic: Type.String({ minLength: 1, description: "Topic carrying the change events, or /regex/ for every matching topic." }),
    format: Type.Optional(literals(["debezium", "debezium-unwrapped", "json"], "Message format.", "debezium")),
    deadLetterTopic: Type.Optional(Type.String({ minLength: 1, description: "Also copy messages that cannot be decoded to this topic (with the reason in headers)." })),
    maxMessageBytes: Type.Optional(Type.Integer({ minimum: 1, default: 1048576, description: "Larger messages are dead-lettered, not decoded." })),
  },
  { additionalProperties: false },
);
type KafkaSource = Located<SourceConfig> & { options: Static<typeof KafkaDebeziumOptions> };

interface Waiter {
  offset: bigint;
  resolve: () => void;
}

const KEEP_RAW_BYTES = 64 * 1024;

export class KafkaDebeziumSource extends ChangeReader {
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private producer: Producer | undefined;
  private readonly sources: KafkaSource[];
  private readonly logger: Logger;
  private readonly observer: SourceObserver | undefined;
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly durable = new Map<string, bigint>();
  private joined = false;

  constructor(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext) {
    super(app.id);
    const options = app.options as KafkaAppOptions;
    this.logger = context.logger;
    this.observer = context.observer;
    this.sources = sources.filter((s): s is KafkaSource => s.type === "kafka-debezium");
    this.kafka = new Kafka(kafkaClientConfig(app, context.logger));
    this.consumer = this.kafka.consumer({
      groupId: options.groupId ?? "grouparoo-stream",
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.max(100, Math.floor((options.sessionTimeoutMs ?? 30_000) / 10)),
      retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 12, restartOnFailure: async () => !this.stopped },
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.joined = true;
      if (this.gate.isPaused) this.setFetching(false);
    });
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      this.joined = false;
      this.logger.error({ err: event.payload.error, restart: event.payload.restart }, "kafka consumer crashed");
    });
    this.consumer.on(this.consumer.events.DISCONNECT, () => (this.joined = false));
  }

  private sourceFor(topic: string): KafkaSource | undefined {
    return this.sources.find((s) => {
      const t = s.options.topic;
      return t.startsWith("/") && t.endsWith("/") && t.length > 2 ? new RegExp(t.slice(1, -1)).test(topic) : t === topic;
    });
  }

  private async start(): Promise<void> {
    await this.consumer.connect();
    const topics = this.sources.map((s) => (s.options.topic.startsWith("/") && s.options.topic.endsWith("/") ? new RegExp(s.options.topic.slice(1, -1)) : s.options.topic));
    await this.consumer.subscribe({ topics, fromBeginning: true });
    if (this.sources.some((s) => s.options.deadLetterTopic)) {
      this.producer = this.kafka.producer();
      await this.producer.connect();
    }
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    this.logger.info({ topics: this.sources.map((s) => s.options.topic) }, "consuming");
  }

  protected async read(): Promise<void> {
    await this.start();
    await this.stopRequested;
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }

  protected async interrupt(): Promise<void> {}

  private streamOf(topic: string, partition: number): string {
    return `kafka:${this.appId}:${topic}:${partition}`;
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const source = this.sourceFor(batch.topic);
    if (!source) return;
    const stream = this.streamOf(batch.topic, batch.partition);
    const format: DebeziumFormat = source.options.format ?? "debezium";
    const maxBytes = source.options.maxMessageBytes ?? 1_048_576;
    let last: string | undefined;
    let sinceHeartbeat = Date.now();
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || this.stopped) break;
      await this.waitWhilePaused({ ms: 1000, run: heartbeat });
      const position = { stream, position: message.offset };
      const commitTime = Number(message.timestamp);
      const size = (message.value?.length ?? 0) + (message.key?.length ?? 0);
      const decoded =
        size > maxBytes
          ? { ok: false as const, reason: `the message is ${size} bytes, over the source's maxMessageBytes ${maxBytes}` }
          : decodeMessage(format, message.key, message.value);
      if (decoded.ok) {
        const c = decoded.change;
        if (c.op === "skip") this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime });
        else this.emit({ sourceId: source.id, op: c.op, key: c.key, before: c.before, after: c.after, position, commitTime: c.commitTime ?? commitTime });
      } else {
        const payload = {
          topic: batch.topic,
          partition: batch.partition,
          offset: message.offset,
          bytes: size,
          key: message.key?.subarray(0, KEEP_RAW_BYTES).toString("base64") ?? null,
          value: message.value?.subarray(0, KEEP_RAW_BYTES).toString("base64") ?? null,
          truncated: size > 2 * KEEP_RAW_BYTES,
        };
        this.logger.warn({ topic: batch.topic, partition: batch.partition, offset: message.offset, reason: decoded.reason }, "undecodable message set aside as a dead letter");
        if (source.options.deadLetterTopic && this.producer) {
          await this.producer.send({
            topic: source.options.deadLetterTopic,
            messages: [{ key: message.key, value: message.value, headers: { "x-grouparoo-reason": decoded.reason, "x-grouparoo-origin": `${batch.topic}/${batch.partition}/${message.offset}` } }],
          });
        }
        this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime, deadLetter: { reason: decoded.reason, payload } });
      }
      last = message.offset;
      if (Date.now() - sinceHeartbeat > 1000) {
        await heartbeat();
        sinceHeartbeat = Date.now();
      }
    }
    this.observer?.consumerLag?.(batch.topic, batch.partition, Number(batch.offsetLag()));
    if (last === undefined) return;
    // Commit only what is durable in the state: wait for the core's acknowledgement of `last`.
    const durable = this.waitDurable(stream, BigInt(last));
    for (;;) {
      const done = await Promise.race([durable.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (done) break;
      if (this.stopped) return;
      await heartbeat();
    }
    resolveOffset(last);
    await this.consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }]);
  }

  private waitDurable(stream: string, offset: bigint): Promise<void> {
    if ((this.durable.get(stream) ?? -1n) >= offset) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(stream) ?? [];
      list.push({ offset, resolve });
      this.waiters.set(stream, list);
    });
  }

  async acknowledge(positions: ReadonlyMap<string, string>): Promise<void> {
    for (const [stream, position] of positions) {
      if (!stream.startsWith(`kafka:${this.appId}:`)) continue;
      const offset = BigInt(position);
      if ((this.durable.get(stream) ?? -1n) < offset) this.durable.set(stream, offset);
      const list = this.waiters.get(stream);
      if (!list) continue;
      const remaining = list.filter((w) => {
        if (w.offset > offset) return true;
        w.resolve();
        return false;
      });
      this.waiters.set(stream, remaining);
    }
  }

  /** The topics to pause and resume; kafkajs throws while its consumer group is not running. */
  private setFetching(fetching: boolean): void {
    const topics = this.sources.filter((s) => !s.options.topic.startsWith("/")).map((s) => ({ topic: s.options.topic }));
    try {
      if (fetching) this.consumer.resume(topics);
      else this.consumer.pause(topics);
    } catch {
      // Not running (starting, restarting after a crash, stopping): the paused flag still holds the
      // handler, and GROUP_JOIN applies it again.
    }
  }

  protected override paused(paused: boolean): void {
    this.setFetching(!paused);
  }

  ready(): boolean {
    return this.joined && !this.stopped;
  }

}

export const kafkaDebeziumSource: SourceComponent = {
  type: "kafka-debezium",
  appType: "kafka",
  options: KafkaDebeziumOptions,
  metrics: [METRICS.kafkaConsumerLag],
  create: (app, sources, context) => new KafkaDebeziumSource(app, sources, context),
};
