// A partition's changelog (README, "Relay and workers"; the Kafka Streams pattern): its state's writes
// on a compacted topic, partitioned like the model's topic, written by a transactional producer whose
// transactional id belongs to the partition, so each transaction carries the writes of one or more
// state transactions together with the consumer offset they reflect (sendOffsets), and the offset's
// metadata names the last state transaction included: a local copy of the state is current exactly
// when its last transaction is that one. Claiming the partition starts the producer (which fences the
// previous owner: its open transaction is aborted, its later ones fail) and writes a claim marker; a
// restore reads the changelog partition from its start up to that marker.
import { randomBytes } from "node:crypto";
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from "kafkajs";
import type { Logger } from "pino";
import type { ChangelogRecord } from "../../core/partitions.js";
import { kafkajs } from "./app.js";
import { retryRetriable, tooLargeForTopic } from "./errors.js";

const CLAIM_KEY = Buffer.from("__claim");

export interface ChangelogPartition {
  changelogTopic: string;
  /** The model's topic and the consumer group whose offsets commit with the changelog. */
  inputTopic: string;
  groupId: string;
  partition: number;
}

export interface Claim {
  /** The marker a restore reads up to. */
  nonce: string;
  /** The last state transaction committed with the partition's offsets (undefined: none yet). */
  checkpoint: string | undefined;
  /**
   * The changelog that transaction was written to, as the offsets' metadata names it (undefined: a
   * checkpoint of a version before 2026-12-03, which did not name it, or none).
   */
  checkpointChangelog: string | undefined;
}

/**
 * The committed offset's metadata: the last state transaction and, after an `@`, the changelog topic
 * it went to (a transaction id is hex, a topic name has no `@`). A changelog holds a partition's state
 * only if every transaction of it went there: one named in the config after others went elsewhere
 * holds only what came after (see PartitionTask's takeover).
 */
export const checkpointMetadata = (transaction: string, changelogTopic: string): string => `${transaction}@${changelogTopic}`;

export function parseCheckpoint(metadata: string | null | undefined): { checkpoint: string | undefined; changelog: string | undefined } {
  if (metadata === null || metadata === undefined || metadata === "") return { checkpoint: undefined, changelog: undefined };
  const at = metadata.indexOf("@");
  return at < 0 ? { checkpoint: metadata, changelog: undefined } : { checkpoint: metadata.slice(0, at), changelog: metadata.slice(at + 1) };
}

/** Records per produce request, at most. */
const REQUEST_RECORDS = 5000;
/**
 * Bytes per produce request, at most (but for one record larger alone): well below the changelog's
 * max.message.bytes (16 MiB), which the broker compares with the request's whole batch for the
 * partition. (Before 2026-12-03 only the count bounded it: 5,000 records of 3.4 KB, a batch over
 * records of many properties, were refused, and the worker exited 70 at every start on that batch.)
 */
const REQUEST_BYTES = 4 * 1024 * 1024;

/** The records cut into produce requests of at most REQUEST_RECORDS records and REQUEST_BYTES bytes. */
function* requests(records: readonly ChangelogRecord[]): Generator<ChangelogRecord[]> {
  let chunk: ChangelogRecord[] = [];
  let bytes = 0;
  for (const record of records) {
    const size = 64 + record.key.length + (record.value?.length ?? 0);
    if (chunk.length > 0 && (chunk.length >= REQUEST_RECORDS || bytes + size > REQUEST_BYTES)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(record);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

/** The writer of one partition's changelog. */
export class PartitionChangelog {
  private readonly producer: Producer;
  private lastOffset: string | undefined;

  constructor(
    kafka: Kafka,
    private readonly admin: Admin,
    private readonly target: ChangelogPartition,
  ) {
    this.producer = kafka.producer({
      transactionalId: `${target.groupId}.${target.changelogTopic}.${target.partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: 60_000,
      createPartitioner: kafkajs().Partitioners.DefaultPartitioner,
      retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 10_000 },
    });
  }

  get changelogTopic(): string {
    return this.target.changelogTopic;
  }

  /** Fences the previous owner, writes the claim marker and reads the committed checkpoint. */
  async claim(): Promise<Claim> {
    await this.producer.connect();
    const nonce = randomBytes(8).toString("hex");
    const transaction = await this.producer.transaction();
    try {
      await transaction.send({ topic: this.target.changelogTopic, acks: -1, messages: [{ key: CLAIM_KEY, value: Buffer.from(nonce), partition: this.target.partition }] });
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw error;
    }
    const [offsets] = await retryRetriable(() => this.admin.fetchOffsets({ groupId: this.target.groupId, topics: [this.target.inputTopic] }));
    const committed = offsets?.partitions.find((p) => p.partition === this.target.partition);
    if (committed && Number(committed.offset) >= 0) this.lastOffset = committed.offset;
    const { checkpoint, changelog } = parseCheckpoint(committed?.metadata);
    return { nonce, checkpoint, checkpointChangelog: changelog };
  }

  /**
   * The first offset the model topic still keeps of this partition (its log start offset): events
   * before it were deleted by the topic's retention (or by hand), whether or not a worker applied them.
   */
  async inputStart(): Promise<bigint> {
    const offsets = await retryRetriable(() => this.admin.fetchTopicOffsets(this.target.inputTopic));
    const low = offsets.find((o) => o.partition === this.target.partition)?.low;
    return low === undefined ? 0n : BigInt(low);
  }

  /**
   * One Kafka transaction: the records (the last write of each key), and the consumer offset
   * `nextOffset` (or the last one again) with `checkpoint` (and this changelog's topic) as its metadata.
   */
  async commit(records: readonly ChangelogRecord[], nextOffset: string | undefined, checkpoint: string): Promise<void> {
    const offset = nextOffset ?? this.lastOffset;
    const transaction = await this.producer.transaction();
    try {
      for (const chunk of requests(records)) {
        await transaction.send({ topic: this.target.changelogTopic, acks: -1, messages: chunk.map((r) => ({ key: r.key, value: r.value, partition: this.target.partition })) });
      }
      if (offset !== undefined) {
        await transaction.sendOffsets({
          consumerGroupId: this.target.groupId,
          topics: [{ topic: this.target.inputTopic, partitions: [{ partition: this.target.partition, offset, metadata: checkpointMetadata(checkpoint, this.target.changelogTopic) } as { partition: number; offset: string }] }],
        });
      }
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      if (tooLargeForTopic(error)) throw this.tooLarge(records, error as Error);
      throw error;
    }
    this.lastOffset = offset;
  }

  /** The error of a transaction the changelog refused for its size, naming its largest state record. */
  private tooLarge(records: readonly ChangelogRecord[], error: Error): Error {
    let largest: ChangelogRecord | undefined;
    const size = (r: ChangelogRecord) => r.key.length + (r.value?.length ?? 0);
    for (const r of records) if (!largest || size(r) > size(largest)) largest = r;
    const key = largest ? largest.key.toString("utf8").slice(0, 200) : "";
    return new Error(
      `changelog ${this.target.changelogTopic} refused partition ${this.target.partition}'s state record ${key} of ${largest ? size(largest) : 0} bytes as larger than its max.message.bytes (${error.message}): ` +
        `raise it (kafka-configs --alter --entity-type topics --entity-name ${this.target.changelogTopic} --add-config max.message.bytes=<bytes>) and start the worker again`,
    );
  }

  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
  }
}

interface Restoring {
  nonce: string;
  apply(records: ChangelogRecord[]): Promise<void>;
  done(count: number): void;
  failed(error: Error): void;
  count: number;
}

/**
 * Reads changelog partitions back (restores). One consumer of its own (a group of one member, which
 * is assigned every partition of the changelog and commits nothing); partitions stay paused except
 * while one is restored, from its earliest offset up to its claim marker. Reads only committed records.
 */
export class ChangelogReader {
  private readonly consumer: Consumer;
  private readonly restoring = new Map<number, Restoring>();
  private joined: Promise<void>;
  private setJoined: () => void = () => undefined;
  private crashed: Error | undefined;

  constructor(
    kafka: Kafka,
    private readonly admin: Admin,
    private readonly topic: string,
    groupId: string,
    private readonly logger: Logger,
  ) {
    // A fetch waits at most 200 ms for records (kafkajs' default is 5 s): a partition resumed for a
    // restore joins the next fetch, so each takeover waited for the fetch in flight, 3 to 5 s even for
    // an empty changelog. The wait applies only when nothing is there to read.
    this.consumer = kafka.consumer({ groupId: `${groupId}.restore.${randomBytes(6).toString("hex")}`, readUncommitted: false, maxBytesPerPartition: 16 * 1024 * 1024, maxBytes: 64 * 1024 * 1024, sessionTimeout: 30_000, maxWaitTimeInMs: 200 });
    this.joined = new Promise((resolve) => (this.setJoined = resolve));
  }

  async start(): Promise<void> {
    // A consumer kafkajs gives up on (an error it does not retry: a group ACL that refuses the restore
    // group, a session timeout the broker does not allow) would leave every restore waiting for ever,
    // the worker up and unready: the restores under way and every later one fail, naming the error,
    // and the worker stops (a takeover that fails stops it with 70) for its supervisor to start it again.
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      if (event.payload.restart) return;
      const reason = new Error(`the changelog ${this.topic}'s restore consumer stopped on an error kafkajs does not retry: ${event.payload.error.message}`);
      this.crashed = reason;
      this.logger.error({ err: event.payload.error, topic: this.topic }, reason.message);
      for (const restoring of this.restoring.values()) restoring.failed(reason);
      this.setJoined();
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      const assigned = (event.payload.memberAssignment as unknown as Record<string, number[]>)[this.topic] ?? [];
      const idle = assigned.filter((p) => !this.restoring.has(p));
      if (idle.length > 0) this.consumer.pause([{ topic: this.topic, partitions: idle }]);
      this.setJoined();
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 4, eachBatch: (payload) => this.eachBatch(payload) });
  }

  /** Applies partition `partition`'s changelog up to the claim marker `nonce`; resolves with the records applied. */
  async restore(partition: number, nonce: string, apply: (records: ChangelogRecord[]) => Promise<void>): Promise<number> {
    await this.joined;
    if (this.crashed) throw this.crashed;
    const [low] = (await retryRetriable(() => this.admin.fetchTopicOffsets(this.topic))).filter((o) => o.partition === partition);
    const done = new Promise<number>((resolve, reject) => this.restoring.set(partition, { nonce, apply, done: resolve, failed: reject, count: 0 }));
    this.consumer.seek({ topic: this.topic, partition, offset: low?.low ?? "0" });
    this.consumer.resume([{ topic: this.topic, partitions: [partition] }]);
    try {
      return await done;
    } finally {
      this.restoring.delete(partition);
      this.consumer.pause([{ topic: this.topic, partitions: [partition] }]);
    }
  }

  /** Stops a restore under way (the partition was taken away meanwhile). */
  cancel(partition: number): void {
    this.restoring.get(partition)?.failed(new Error(`the restore of partition ${partition} was cancelled`));
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, pause, isStale }: EachBatchPayload): Promise<void> {
    const restoring = this.restoring.get(batch.partition);
    if (!restoring) {
      pause();
      return;
    }
    // Fetched before the seek to the partition's start: it is read again from there.
    if (isStale()) return;
    const records: ChangelogRecord[] = [];
    let finished = false;
    for (const message of batch.messages) {
      if (message.key?.equals(CLAIM_KEY)) {
        if (message.value?.toString() === restoring.nonce) {
          finished = true;
          break;
        }
        continue;
      }
      if (message.key) records.push({ key: message.key, value: message.value });
    }
    try {
      if (records.length > 0) await restoring.apply(records);
    } catch (error) {
      restoring.failed(error as Error);
      pause();
      return;
    }
    restoring.count += records.length;
    const last = batch.messages[batch.messages.length - 1];
    if (last) resolveOffset(last.offset);
    await heartbeat().catch(() => undefined);
    if (finished) {
      pause();
      restoring.done(restoring.count);
    }
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect().catch((error: unknown) => this.logger.warn({ err: error }, "closing the restore consumer failed"));
  }
}
