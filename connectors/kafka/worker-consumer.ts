// The workers' consumer (README, "Relay and workers"): one kafkajs consumer in the model topic's
// consumer group (the kafka app's groupId), read with eachBatch and manual offsets like the
// kafka-debezium source, each partition's batch decoded from the relay's events and handed to the
// partition's owner (streams/partition-task.ts) with a heartbeat, resolved once the owner reports it
// committed (changelog and offsets in one Kafka transaction). A rebalance waits for the batches in
// flight; `rebalancing` is told when it starts (before the member rejoins) and `assigned` the
// partitions it ends with.
import type { Consumer, EachBatchPayload, Kafka } from "kafkajs";
import type { Logger } from "pino";
import type { Change } from "../../core/change.js";
import type { AppConfig } from "../../core/config/schema.js";
import type { SourceObserver } from "../types.js";
import { kafkaClient, type KafkaAppOptions } from "./app.js";
import { decodeRelayEvent } from "./relay-codec.js";

export interface PartitionBatch {
  topic: string;
  partition: number;
  /** The decoded changes, each at its stream position (the message offset). */
  changes: Change[];
  /** The offset of the batch's last message. */
  lastOffset: string;
  heartbeat(): Promise<void>;
  /** False once the consumer stops or the partition was taken away. */
  running(): boolean;
}

export interface PartitionOwner {
  rebalancing(): void;
  assigned(assignment: ReadonlyMap<string, readonly number[]>): void;
  /** Resolves once the batch's changes are committed (or the partition is no longer owned). */
  batch(batch: PartitionBatch): Promise<void>;
  /** The consumer stopped on an error kafkajs does not restart it from: it reads nothing any more. */
  crashed?(error: Error): void;
}

/** The stream name of a topic-partition, as the kafka-debezium source names it. */
export const partitionStream = (appId: string, topic: string, partition: number): string => `kafka:${appId}:${topic}:${partition}`;

export class WorkerConsumer {
  readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private joined = false;
  private stopped = false;

  constructor(
    readonly app: AppConfig,
    private readonly topics: readonly string[],
    private readonly sourceOf: (topic: string) => { firstSourceId: string },
    private readonly owner: PartitionOwner,
    private readonly logger: Logger,
    private readonly observer?: SourceObserver,
  ) {
    const options = app.options as KafkaAppOptions;
    this.kafka = kafkaClient(app, logger);
    const session = options.sessionTimeoutMs ?? 30_000;
    this.consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: session,
      heartbeatInterval: Math.max(100, Math.floor(session / 10)),
      // A partition is paused while its task holds its bound. With every owned partition paused,
      // kafkajs's fetcher sleeps this long (its default is 5 s) and a resume does not wake it; a
      // fetch also waits at most this long for records when there are none (Java's default).
      maxWaitTimeInMs: 500,
      readUncommitted: false,
      retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 12, restartOnFailure: async () => !this.stopped },
    });
    this.consumer.on(this.consumer.events.REBALANCING, () => {
      this.joined = false;
      this.owner.rebalancing();
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.joined = true;
      const assignment = event.payload.memberAssignment as unknown as Record<string, number[]>;
      this.owner.assigned(new Map(Object.entries(assignment)));
    });
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      this.joined = false;
      this.logger.error({ err: event.payload.error, restart: event.payload.restart }, "kafka consumer crashed");
      if (event.payload.restart || this.stopped) return;
      // kafkajs gives up on this consumer: the partitions are given up, and the owner is told.
      this.owner.assigned(new Map());
      this.owner.crashed?.(event.payload.error);
    });
  }

  get groupId(): string {
    return (this.app.options as KafkaAppOptions).groupId ?? "grouparoo-stream";
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [...this.topics], fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 64,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  ready(): boolean {
    return this.joined && !this.stopped;
  }

  pause(topic: string, partition: number, paused: boolean): void {
    try {
      if (paused) this.consumer.pause([{ topic, partitions: [partition] }]);
      else this.consumer.resume([{ topic, partitions: [partition] }]);
    } catch {
      // Not running (starting, rejoining): the owner's gate still holds its changes back.
    }
  }

  seek(topic: string, partition: number, offset: string): void {
    try {
      this.consumer.seek({ topic, partition, offset });
    } catch (error) {
      this.logger.warn({ err: error, topic, partition, offset }, "seeking the partition failed");
    }
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const last = batch.messages[batch.messages.length - 1];
    if (!last || this.stopped) return;
    const stream = partitionStream(this.app.id, batch.topic, batch.partition);
    const fallback = this.sourceOf(batch.topic).firstSourceId;
    const changes: Change[] = [];
    for (const message of batch.messages) {
      const position = { stream, position: message.offset };
      const decoded = decodeRelayEvent(message.value, message.headers);
      if (decoded.ok) {
        // The decoded change is this loop's own: given its position in place (a spread adding a key
        // takes V8's slow path, about a microsecond a message).
        changes.push(Object.assign(decoded.change, { position }));
      } else {
        this.logger.warn({ topic: batch.topic, partition: batch.partition, offset: message.offset, reason: decoded.reason }, "undecodable message set aside as a dead letter");
        const payload = { topic: batch.topic, partition: batch.partition, offset: message.offset, key: message.key?.toString("base64") ?? null, value: message.value?.subarray(0, 65536).toString("base64") ?? null };
        changes.push({ sourceId: fallback, op: "marker", key: "", before: null, after: null, position, commitTime: Number(message.timestamp), deadLetter: { reason: decoded.reason, payload } });
      }
    }
    await this.owner.batch({
      topic: batch.topic,
      partition: batch.partition,
      changes,
      lastOffset: last.offset,
      heartbeat,
      running: () => isRunning() && !isStale() && !this.stopped,
    });
    this.observer?.consumerLag?.(batch.topic, batch.partition, Number(batch.offsetLag()));
    if (isRunning() && !isStale()) resolveOffset(last.offset);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.consumer.disconnect().catch(() => undefined);
  }
}
