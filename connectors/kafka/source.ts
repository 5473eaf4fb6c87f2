// kafka-debezium: one kafkajs consumer (one consumer group) per kafka app, covering its
// kafka-debezium sources. eachBatch with manual offsets: a partition's batch is decoded into changes,
// the handler waits until the core reports them durable (heartbeating meanwhile), and only then
// resolves and commits the offsets; so a rebalance, which waits for eachBatch, commits the batch in
// flight first. Backpressure pauses the partitions. A message that cannot be decoded becomes a
// dead letter in the same transaction that moves the offset past it (and optionally a DLQ message).
// kafkajs stays behind this file: a KafkaJS-compatible client can replace it without touching the core.
import { Observable, type Subscriber } from "rxjs";
import { Kafka, logLevel, type Consumer, type EachBatchPayload, type KafkaConfig, type LogEntry, type Producer } from "kafkajs";
import type { Logger } from "pino";
import type { AppConfig, SourceConfig } from "../../daemon/config/schema.js";
import type { Located } from "../../daemon/config/validate.js";
import type { Change } from "../../streams/change.js";
import type { SourceConnector, SourceContext, SourceObserver, SourcePlugin } from "../types.js";
import { PauseGate } from "../pause.js";
import { decodeMessage, type DebeziumFormat, type DecodeOptions } from "./decode.js";

type KafkaApp = Extract<AppConfig, { type: "kafka" }>;
type KafkaSource = Extract<SourceConfig, { type: "kafka-debezium" }>;

interface Waiter {
  offset: bigint;
  resolve: () => void;
}

const KEEP_RAW_BYTES = 64 * 1024;

export function kafkaClientConfig(app: KafkaApp, logger: Logger): KafkaConfig {
  const o = app.options;
  const brokers = Array.isArray(o.brokers) ? o.brokers : o.brokers.split(",").map((b) => b.trim());
  const levels: Record<number, "error" | "warn" | "info" | "debug"> = { [logLevel.ERROR]: "error", [logLevel.WARN]: "warn", [logLevel.INFO]: "info", [logLevel.DEBUG]: "debug" };
  return {
    clientId: o.clientId ?? "grouparoo-stream",
    brokers,
    ...(o.ssl === undefined ? {} : { ssl: o.ssl }),
    ...(o.sasl ? { sasl: { mechanism: o.sasl.mechanism, username: o.sasl.username, password: o.sasl.password } as KafkaConfig["sasl"] } : {}),
    retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 12 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...rest } = entry.log;
      logger[levels[entry.level] ?? "info"]({ kafka: entry.namespace, ...rest }, message);
    },
  };
}

export class KafkaDebeziumSource implements SourceConnector {
  readonly appId: string;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private producer: Producer | undefined;
  private readonly sources: KafkaSource[];
  private readonly logger: Logger;
  private readonly observer: SourceObserver | undefined;
  private subscriber: Subscriber<Change> | undefined;
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly durable = new Map<string, bigint>();
  private joined = false;
  private stopped = false;
  private readonly gate = new PauseGate();
  private done: Promise<void> | undefined;

  constructor(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext) {
    if (app.type !== "kafka") throw new Error(`kafka-debezium needs a kafka app, not ${app.type}`);
    this.appId = app.id;
    this.logger = context.logger;
    this.observer = context.observer;
    this.sources = sources.filter((s): s is Located<KafkaSource> => s.type === "kafka-debezium");
    this.kafka = new Kafka(kafkaClientConfig(app, context.logger));
    this.consumer = this.kafka.consumer({
      groupId: app.options.groupId ?? "grouparoo-stream",
      sessionTimeout: app.options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.max(100, Math.floor((app.options.sessionTimeoutMs ?? 30_000) / 10)),
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

  changes(): Observable<Change> {
    return new Observable<Change>((subscriber) => {
      this.subscriber = subscriber;
      this.done = this.start().then(
        () => undefined,
        (error: Error) => subscriber.error(error),
      );
      return () => {
        this.stopped = true;
      };
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

  private streamOf(topic: string, partition: number): string {
    return `kafka:${this.appId}:${topic}:${partition}`;
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const source = this.sourceFor(batch.topic);
    if (!source) return;
    const stream = this.streamOf(batch.topic, batch.partition);
    const format: DebeziumFormat = source.options.format ?? "debezium";
    const maxBytes = source.options.maxMessageBytes ?? 1_048_576;
    const options: DecodeOptions = {
      ...(source.options.unavailableValuePlaceholder === undefined ? {} : { unavailableValuePlaceholder: source.options.unavailableValuePlaceholder }),
      ...(source.options.binaryHandlingMode === undefined ? {} : { binaryHandlingMode: source.options.binaryHandlingMode }),
    };
    let last: string | undefined;
    let sinceHeartbeat = Date.now();
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || this.stopped) break;
      await this.gate.wait(() => this.stopped, { ms: 1000, run: heartbeat });
      const position = { stream, position: message.offset };
      const commitTime = Number(message.timestamp);
      const size = (message.value?.length ?? 0) + (message.key?.length ?? 0);
      const decoded =
        size > maxBytes
          ? { ok: false as const, reason: `the message is ${size} bytes, over the source's maxMessageBytes ${maxBytes}` }
          : decodeMessage(format, message.key, message.value, options);
      if (decoded.ok) {
        const c = decoded.change;
        if (c.op === "skip") this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime });
        else this.emit({ sourceId: source.id, op: c.op, key: c.key, before: c.before, after: c.after, position, commitTime: c.commitTime ?? commitTime, ...(c.tombstone ? { tombstone: true } : {}) });
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
    this.observer?.consumerLag(batch.topic, batch.partition, Number(batch.offsetLag()));
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

  private emit(change: Change): void {
    this.subscriber?.next(change);
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

  pause(): void {
    if (this.gate.pause()) this.setFetching(false);
  }

  resume(): void {
    if (this.gate.resume()) this.setFetching(true);
  }

  ready(): boolean {
    return this.joined && !this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.gate.wake();
    await this.done;
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    this.subscriber?.complete();
  }
}

export const kafkaDebeziumPlugin: SourcePlugin = {
  appType: "kafka",
  sourceTypes: ["kafka-debezium"],
  create: (app, sources, context) => new KafkaDebeziumSource(app, sources, context),
};
