// kafka-debezium: one kafkajs consumer (one consumer group) per kafka app, covering its
// kafka-debezium sources. eachBatch with manual offsets: a partition's batch is decoded into changes,
// the handler waits until the core reports them durable (heartbeating meanwhile), and only then
// resolves and commits the offsets; so a rebalance, which waits for eachBatch, commits the batch in
// flight first. Backpressure holds the handler before its next message: kafkajs fetches a broker's next
// batches only once its handlers returned, so nothing more is read meanwhile. (Pausing kafkajs's
// partitions instead made its fetcher, finding no partition to fetch, sleep its maxWaitTime, 5 s,
// which a resume did not cut short.) A message that cannot be decoded becomes a dead letter in the
// same transaction that moves the offset past it (and optionally a DLQ message).
// kafkajs stays behind this file: a KafkaJS-compatible client can replace it without touching the core.
import { Type, type Static } from "@sinclair/typebox";
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from "kafkajs";
import { pino, type Logger } from "pino";
import { literals, topicName } from "../../core/config/schema.js";
import type { AppConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import { METRICS } from "../../metrics/names.js";
import { ProblemLog } from "../problem-log.js";
import { ChangeReader } from "../reader.js";
import type { Change } from "../../core/change.js";
import type { RereadRequest, SourceComponent, SourceContext, SourceObserver } from "../types.js";
import { kafkaClient, kafkaClientConfig, kafkajs, type KafkaAppOptions } from "./app.js";
import { decodeMessage, type DebeziumFormat, type DecodeOptions } from "./decode.js";
import { classifyKafkaError, refusedForGood, retryRetriable } from "./errors.js";

export const KafkaDebeziumOptions = Type.Object(
  {
    topic: Type.String({ minLength: 1, description: "Topic carrying the change events, or /regex/ for every matching topic." }),
    format: Type.Optional(literals(["debezium", "debezium-unwrapped", "json"], "Message format.", "debezium")),
    deadLetterTopic: Type.Optional(
      topicName("Also copy messages that cannot be decoded to this topic (with the reason in headers); not one the source reads."),
    ),
    maxMessageBytes: Type.Optional(Type.Integer({ minimum: 1, default: 1048576, description: "Larger messages are dead-lettered, not decoded." })),
    unavailableValuePlaceholder: Type.Optional(
      Type.String({
        minLength: 1,
        default: "__debezium_unavailable_value",
        description: "The connector's unavailable.value.placeholder: a column holding it (as text, in an array, or as bytes) keeps its stored value.",
      }),
    ),
    binaryHandlingMode: Type.Optional(
      literals(["bytes", "base64", "base64-url-safe", "hex"], "The connector's binary.handling.mode: how bytea values and the placeholder in them are written.", "bytes"),
    ),
  },
  { additionalProperties: false },
);
type KafkaSource = Located<SourceConfig> & { options: Static<typeof KafkaDebeziumOptions> };

interface Waiter {
  offset: bigint;
  resolve: () => void;
}

const KEEP_RAW_BYTES = 64 * 1024;

/**
 * How often the topics of the cluster are listed while a /regex/ source runs: kafkajs matches a
 * regular expression against the topics there are when it subscribes, never again, and Debezium makes
 * a table's topic when the table first changes.
 */
export const TOPIC_WATCH = { intervalMs: 10_000 };

export class KafkaDebeziumSource extends ChangeReader {
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly groupId: string;
  private producer: Producer | undefined;
  private readonly sources: KafkaSource[];
  private readonly logger: Logger;
  private readonly observer: SourceObserver | undefined;
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly durable = new Map<string, bigint>();
  /** The position the state held of each partition when the source started (see eachBatch). */
  private readonly held = new Map<string, bigint>();
  /**
   * The partitions (streams) the group had committed offsets for when the consumer last started: the
   * broker drops a topic's offsets with the topic, so `held` is a position in the same partition, not
   * in a topic made again under its name (see eachBatch).
   */
  private readonly committedAtStart = new Set<string>();
  /** Partitions to read from their start, the group's offsets notwithstanding (see readCommitted). */
  private readonly rewind = new Map<string, { topic: string; partition: number; low: bigint; committed: bigint; sought: number }>();
  private joined = false;
  /** The admin client listTopics keeps (connected once). */
  private admin: Promise<Admin> | undefined;
  /** The partitions this member was assigned at its last join, by topic. */
  private assignment: Record<string, number[]> = {};
  /** A replay under way (a re-read): per stream, where it starts and the last offset it must reach. */
  private replay: { runId: string; sourceId: string; partitions: Map<string, { low: bigint; target: bigint; started: boolean; reached: boolean }> } | undefined;

  constructor(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext) {
    super(app.id);
    const options = app.options as KafkaAppOptions;
    this.logger = context.logger;
    this.observer = context.observer;
    this.sources = sources.filter((s): s is KafkaSource => s.type === "kafka-debezium");
    // What the state holds of each partition: a message at or before it that cannot be decoded is not
    // set aside again (see eachBatch). Not `durable`: an offset is committed only once what was read up
    // to it is durable, which a state ahead of the partition (a topic made again) says nothing of.
    for (const [stream, position] of context.positions) {
      if (stream.startsWith(`kafka:${app.id}:`) && /^\d+$/.test(position)) this.held.set(stream, BigInt(position));
    }
    this.kafka = kafkaClient(app, context.logger);
    this.groupId = options.groupId ?? "grouparoo-stream";
    this.consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.max(100, Math.floor((options.sessionTimeoutMs ?? 30_000) / 10)),
      retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 12, restartOnFailure: async () => !this.stopped },
      // A topic not made yet is waited for (see start), never made by the consumer: made on the
      // broker's defaults (one partition, the delete policy), it would pre-empt the partitions and
      // compaction Debezium's topic.creation settings (or the operator) give it.
      allowAutoTopicCreation: false,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.joined = true;
      this.assignment = event.payload.memberAssignment as unknown as Record<string, number[]>;
      this.seekOnJoin();
    });
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      this.joined = false;
      this.logger.error({ err: event.payload.error, restart: event.payload.restart }, "kafka consumer crashed");
      // kafkajs does not restart it after an error it deems not retriable: read() does (see there).
      if (!event.payload.restart) this.crashed?.(event.payload.error);
    });
    this.consumer.on(this.consumer.events.DISCONNECT, () => (this.joined = false));
    // A batch of aborted messages and commit markers only reaches no eachBatch; a replay still counts it.
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (!this.replay || payload.batchSize > 0) return;
      const stream = this.streamOf(payload.topic, payload.partition);
      const partition = this.replay.partitions.get(stream);
      if (!partition) return;
      if (payload.firstOffset !== null && BigInt(payload.firstOffset) <= partition.low) partition.started = true;
      this.replayed(stream, BigInt(payload.lastOffset));
    });
  }

  private sourceFor(topic: string): KafkaSource | undefined {
    return this.sources.find((s) => readsTopic(s.options.topic, topic));
  }

  /**
   * Starts the consumer on the topics there are. Returns the topics there were before it subscribed
   * when some are to be watched for (a /regex/ source, or a named topic not made yet), else undefined.
   * A named topic not made yet is left out of the subscription (kafkajs would wait on it, and every
   * other topic of the app with it) and read once it is made; with none to read, the consumer waits
   * unstarted (the app is not ready meanwhile).
   */
  private async start(): Promise<ReadonlySet<string> | undefined> {
    // Listed before subscribing: a topic made in between is in the subscription and only looks new once.
    const known = new Set(await this.listTopics());
    const missing = this.sources.filter((s) => !isTopicRegex(s.options.topic) && !known.has(s.options.topic)).map((s) => s.options.topic);
    const topics = this.sources.filter((s) => isTopicRegex(s.options.topic) || known.has(s.options.topic)).map((s) => subscribed(s.options.topic));
    const watched = missing.length > 0 || this.sources.some((s) => isTopicRegex(s.options.topic)) ? known : undefined;
    if (missing.length > 0) {
      this.logger.warn({ topics: missing, checkEveryMs: TOPIC_WATCH.intervalMs }, "topics the sources read do not exist yet: each is read from its start once it is made (the consumer does not make them)");
    }
    if (topics.length === 0) return watched;
    await this.consumer.connect();
    await this.consumer.subscribe({ topics, fromBeginning: true });
    // A start after a crash of the consumer in this process: what it made durable since is held too.
    for (const [stream, offset] of this.durable) if (!this.replay?.partitions.has(stream) && offset > (this.held.get(stream) ?? -1n)) this.held.set(stream, offset);
    await this.readCommitted(known);
    if (this.sources.some((s) => s.options.deadLetterTopic)) {
      this.producer ??= this.kafka.producer();
      await this.producer.connect();
    }
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    this.logger.info({ topics: this.sources.map((s) => s.options.topic) }, "consuming");
    return known;
  }

  /**
   * The cluster's topics, through one admin client kept while the source runs (the topic watch lists
   * them every TOPIC_WATCH.intervalMs for the daemon's life); one that failed is made again next time.
   */
  private listTopics(): Promise<string[]> {
    return this.withAdmin((admin) => retryRetriable(() => admin.listTopics(), 10_000));
  }

  /**
   * Runs `body` with the admin client the source keeps (connected once: a new client's first request
   * for a group's offsets waited about 0.3 s, at every start); one that failed is made again next time.
   */
  private async withAdmin<T>(body: (admin: Admin) => Promise<T>): Promise<T> {
    try {
      this.admin ??= (async () => {
        const admin = this.kafka.admin();
        await admin.connect();
        return admin;
      })();
      return await body(await this.admin);
    } catch (error) {
      const failed = this.admin;
      this.admin = undefined;
      await failed?.then((a) => a.disconnect()).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Resolves with the topics a source reads (by /regex/ or by name) that were not there when the
   * consumer subscribed, once some appear (listed every TOPIC_WATCH.intervalMs); never once `ended`
   * resolves.
   */
  private async topicsAppeared(known: ReadonlySet<string>, ended: Promise<unknown>): Promise<string[]> {
    let over = false;
    void ended.then(() => (over = true));
    while (!over && !this.stopped) {
      await Promise.race([new Promise((r) => setTimeout(r, TOPIC_WATCH.intervalMs)), ended]);
      if (over || this.stopped) break;
      try {
        const added = (await this.listTopics()).filter((topic) => !known.has(topic) && this.sourceFor(topic) !== undefined);
        if (added.length > 0 && !over) return added;
      } catch (error) {
        this.logger.debug({ err: error }, "listing the cluster's topics for the topics not read yet failed; trying again");
      }
    }
    return new Promise<never>(() => undefined);
  }

  /**
   * Compares the group's committed offsets with the state before the consumer reads and commits
   * anything. A partition the state holds a position of that the group has offsets for is the same
   * partition (committedAtStart: the broker drops a topic's offsets with the topic). A partition the
   * state holds nothing of but the group has read past its start (an empty `--state` on the group of
   * an earlier one, a source added on a topic the group read for another) is read from its start
   * (rewind): the group's offsets would skip every row before them. Asked for the topics there are
   * (`known`, listed as the consumer started); a topic not made yet has no offsets.
   */
  private async readCommitted(known: ReadonlySet<string>): Promise<void> {
    this.committedAtStart.clear();
    this.rewind.clear();
    // Only topics there are (one not made yet has no offsets, and asking for it would wait on it).
    const topics = [...known].filter((topic) => this.sourceFor(topic));
    if (topics.length === 0) return;
    // An error goes up: the consumer is started again with backoff (read()). Started without these,
    // it would apply again what the state holds, or skip what it lacks, and say so nowhere.
    await this.withAdmin(async (admin) => {
      const offsets = await retryRetriable(() => admin.fetchOffsets({ groupId: this.groupId, topics }), 10_000);
      for (const { topic, partitions } of offsets) {
        let lows: Map<number, bigint> | undefined;
        for (const { partition, offset } of partitions) {
          const committed = BigInt(offset);
          if (committed < 0n) continue;
          const stream = this.streamOf(topic, partition);
          if (this.held.has(stream)) {
            this.committedAtStart.add(stream);
            continue;
          }
          lows ??= new Map((await retryRetriable(() => admin.fetchTopicOffsets(topic), 10_000)).map((p) => [p.partition, BigInt(p.low)]));
          const low = lows.get(partition);
          if (low !== undefined && committed > low) this.rewind.set(stream, { topic, partition, low, committed, sought: 0 });
        }
      }
    });
    if (this.rewind.size > 0) {
      this.logger.warn(
        { group: this.groupId, partitions: [...this.rewind.values()].map((r) => `${r.topic}/${r.partition}@${r.committed}`) },
        "the state holds nothing of partitions the consumer group has read past the start of: they are read from their start",
      );
    }
  }

  /**
   * On each join, before the first fetch: seeks the assigned partitions to rewind to their start, and
   * those a replay (a Run) has not begun reading yet to its first offset (a consumer started again,
   * after a crash or to subscribe to a new topic, starts from the committed offsets, not from a seek
   * made before, and the replay would wait for its first offset without end).
   */
  private seekOnJoin(): void {
    for (const r of this.rewind.values()) {
      if (!this.assignment[r.topic]?.includes(r.partition)) continue;
      r.sought += 1;
      this.consumer.seek({ topic: r.topic, partition: r.partition, offset: r.low.toString() });
    }
    const prefix = `kafka:${this.appId}:`;
    for (const [stream, p] of this.replay?.partitions ?? []) {
      if (p.started) continue;
      const topic = stream.slice(prefix.length, stream.lastIndexOf(":"));
      const partition = Number(stream.slice(stream.lastIndexOf(":") + 1));
      if (this.assignment[topic]?.includes(partition)) this.consumer.seek({ topic, partition, offset: p.low.toString() });
    }
  }

  /** A permanent problem (errors.ts) keeping the consumer from starting, for /readyz; null when none. */
  private failing: string | null = null;
  /** Told of a crash kafkajs does not restart from (read() starts the consumer again). */
  private crashed: ((error: unknown) => void) | undefined;

  problem(): string | null {
    return this.stopped ? null : this.failing;
  }

  /**
   * Starts the consumer, retrying until stopped: a cluster that cannot be reached (kafkajs gives up
   * after its own retries) is tried again with backoff from 1 s to 30 s and logged at warn; a permanent
   * error (authentication, authorization) is this app's problem(), logged at error once (then at most
   * once a minute) and tried again once a minute. Either way the other apps keep running.
   */
  protected async read(): Promise<void> {
    const reconnects = new ProblemLog(this.logger, "warn", 0);
    const permanents = new ProblemLog(this.logger, "error", 60_000);
    let delay = 1000;
    let started = false;
    while (!this.stopped) {
      try {
        // A crash kafkajs does not restart from (an error it deems not retriable) ends the consumer: it
        // is started again here, like one that could not start, so the source never stalls unseen.
        const crashed = new Promise<unknown>((resolve) => (this.crashed = resolve));
        started = false;
        const known = await this.start();
        started = true;
        const since = Date.now();
        this.failing = null;
        const ended = Promise.race([crashed, this.stopRequested]);
        const appeared = known === undefined ? new Promise<never>(() => undefined) : this.topicsAppeared(known, ended);
        const stopped = await Promise.race([crashed.then((error) => ({ error })), this.stopRequested.then(() => undefined), appeared.then((topics) => ({ topics }))]);
        if (stopped === undefined) break;
        if ("topics" in stopped) {
          // A new topic a source reads (by /regex/, or by a name not made before): the consumer subscribes again (read from its start).
          this.logger.info({ topics: stopped.topics }, "new topics the sources read: the consumer subscribes again to read them");
          await this.consumer.disconnect();
          continue;
        }
        // A consumer that ran a while before it stopped is started again soon, not after the last backoff.
        if (Date.now() - since > 60_000) delay = 1000;
        throw stopped.error;
      } catch (error) {
        await this.consumer.disconnect().catch(() => undefined);
        if (this.stopped) break;
        const { permanent, reason } = classifyKafkaError(error);
        this.failing = permanent ? reason : null;
        const wait = permanent ? 60_000 : delay;
        const what = started ? "the kafka consumer stopped on an error kafkajs does not retry" : "the kafka consumer cannot start";
        if (permanent) permanents.report(reason, { retryInMs: wait }, `${what} until this is fixed; other apps go on`, error);
        else reconnects.report(reason, { retryInMs: wait }, `${what}; starting it again`, error);
        if (!permanent) delay = Math.min(delay * 2, 30_000);
        await Promise.race([new Promise((r) => setTimeout(r, wait)), this.stopRequested]);
      }
    }
    await this.stopRequested;
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.then((a) => a.disconnect()).catch(() => undefined);
    this.admin = undefined;
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
    const options: DecodeOptions = {
      ...(source.options.unavailableValuePlaceholder === undefined ? {} : { unavailableValuePlaceholder: source.options.unavailableValuePlaceholder }),
      ...(source.options.binaryHandlingMode === undefined ? {} : { binaryHandlingMode: source.options.binaryHandlingMode }),
    };
    let last: string | undefined;
    let sinceHeartbeat = Date.now();
    // A batch goes stale when the consumer seeks (a Run's replay), which this source does only after
    // awaiting: asked at the start and after each await, not per message (kafkajs looks the partition
    // up in a map for it).
    let awaited = true;
    // Messages the state already holds come again when the group's committed offset lags behind it
    // (a crash between a batch's commit and its offsets', a rebalance). Applied again, they change
    // nothing; but one that cannot be decoded was set aside already: it is not stored as a dead letter
    // (nor copied to the dead-letter topic) a second time. Not while the partition is replayed (a
    // re-read), nor when the state is past the partition's end (a topic deleted and made again).
    const replaying = this.replay?.partitions.get(stream);
    // A batch fetched from the replay's first offset follows the seek (one fetched before it may still
    // pass). Not the first message's offset: the first offset may hold no message a consumer gets (an
    // aborted transaction's, a record compaction removed).
    const fetchedOffset = BigInt((batch as unknown as { fetchedOffset: string }).fetchedOffset);
    if (replaying && fetchedOffset === replaying.low) replaying.started = true;
    const rewinding = this.rewind.get(stream);
    if (rewinding) {
      // Read from before where the group was (its start, or what retention left of it): rewound.
      if (fetchedOffset < rewinding.committed || rewinding.sought >= 2) this.rewind.delete(stream);
      else {
        // Fetched before the seek took effect: nothing of it is applied, the partition is sought again.
        rewinding.sought += 1;
        this.consumer.seek({ topic: batch.topic, partition: batch.partition, offset: rewinding.low.toString() });
        return;
      }
    }
    const held = replaying ? undefined : this.held.get(stream);
    const first = batch.firstOffset();
    const again = held !== undefined && first !== null && BigInt(first) <= held && held < BigInt(batch.highWatermark);
    // In a partition the group had committed offsets of (the same partition, not a topic made again),
    // a message at or before the state's position is applied already: it is not applied again. (A
    // truncate applied again removed the rows the other partitions had written since, and those are
    // not read again; before 2026-12-03 such messages were applied again.)
    const applied = again && this.committedAtStart.has(stream) ? held : undefined;
    // A message passed over because the state holds it already carries the state's position, not its
    // own: the stored position never moves back (a crash before the batch's offsets were committed
    // would otherwise start the next run behind the state, applying what it holds again).
    const heldPosition = held === undefined ? undefined : { stream, position: held.toString() };
    // A state past the partition's end held another incarnation of it: its position says nothing of this one.
    if (held !== undefined && held >= BigInt(batch.highWatermark)) this.held.delete(stream);
    for (const message of batch.messages) {
      if (!isRunning() || this.stopped || (awaited && isStale())) break;
      awaited = false;
      // Only a paused source waits: an await per message would cost every message two turns of the microtask queue.
      if (this.gate.isPaused) {
        await this.waitWhilePaused({ ms: 1000, run: heartbeat });
        if (!isRunning() || isStale() || this.stopped) break;
      }
      const position = { stream, position: message.offset };
      const commitTime = Number(message.timestamp);
      const size = (message.value?.length ?? 0) + (message.key?.length ?? 0);
      const already = applied !== undefined && BigInt(message.offset) <= applied;
      const decoded = already
        ? undefined
        : size > maxBytes
          ? { ok: false as const, reason: `the message is ${size} bytes, over the source's maxMessageBytes ${maxBytes}` }
          : decodeMessage(format, message.key, message.value, options);
      if (decoded === undefined) {
        this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position: heldPosition ?? position, commitTime });
      } else if (decoded.ok) {
        const c = decoded.change;
        if (c.op === "skip") this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime });
        else this.emit({ sourceId: source.id, op: c.op, key: c.key, before: c.before, after: c.after, position, commitTime: c.commitTime ?? commitTime, ...(c.tombstone ? { tombstone: true } : {}), ...(c.partial ? { partial: true } : {}) });
      } else if (again && BigInt(message.offset) <= (held as bigint)) {
        this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position: heldPosition ?? position, commitTime });
      } else {
        const payload = {
          topic: batch.topic,
          partition: batch.partition,
          offset: message.offset,
          bytes: size,
          key: message.key?.subarray(0, KEEP_RAW_BYTES).toString("base64") ?? null,
          value: message.value?.subarray(0, KEEP_RAW_BYTES).toString("base64") ?? null,
          truncated: (message.key?.length ?? 0) > KEEP_RAW_BYTES || (message.value?.length ?? 0) > KEEP_RAW_BYTES,
        };
        this.logger.warn({ topic: batch.topic, partition: batch.partition, offset: message.offset, reason: decoded.reason }, "undecodable message set aside as a dead letter");
        let reason = decoded.reason;
        if (source.options.deadLetterTopic && this.producer) {
          awaited = true;
          try {
            await this.producer.send({
              topic: source.options.deadLetterTopic,
              messages: [{ key: message.key, value: message.value, headers: { "x-grouparoo-reason": decoded.reason, "x-grouparoo-origin": `${batch.topic}/${batch.partition}/${message.offset}` } }],
            });
          } catch (error) {
            // One the cluster will never take (too large for the topic, not authorized) would hold the
            // partition for good: the dead letter is stored without its copy, and says so. Another
            // error goes up, and the batch is read again.
            if (!refusedForGood(error)) throw error;
            this.logger.error({ err: error, topic: batch.topic, partition: batch.partition, offset: message.offset, deadLetterTopic: source.options.deadLetterTopic }, "copying an undecodable message to the dead-letter topic failed; it is kept in the dead-letter store");
            reason = `${decoded.reason} (not copied to ${source.options.deadLetterTopic}: ${(error as Error).message})`;
          }
        }
        this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime, deadLetter: { reason, payload } });
      }
      last = message.offset;
      if (Date.now() - sinceHeartbeat > 1000) {
        await heartbeat();
        sinceHeartbeat = Date.now();
        awaited = true;
      }
    }
    this.observer?.consumerLag?.(batch.topic, batch.partition, Number(batch.offsetLag()));
    // Up to the batch's last offset, a transaction's commit marker included (no message of it is handed out).
    if (replaying && last !== undefined) this.replayed(stream, BigInt(last === batch.messages[batch.messages.length - 1]?.offset ? batch.lastOffset() : last));
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

  /**
   * Reads a source's topic again (a Run) by replaying it from its earliest retained offset: for a
   * compacted topic (or one that keeps everything) that is every row's latest change, so the state
   * ends as a fresh consumer of the topic would have it. The Run completes once every assigned
   * partition has been replayed up to the high watermark it had when the replay began.
   */
  async reread(request: RereadRequest): Promise<void> {
    const marker = (position: string): Change => ({ sourceId: request.sourceIds[0] ?? "", op: "marker", key: "", before: null, after: null, position: { stream: `run:${request.runId}`, position }, commitTime: Date.now() });
    const sources = this.sources.filter((s) => request.sourceIds.includes(s.id));
    const partitions = new Map<string, { low: bigint; target: bigint; started: boolean; reached: boolean }>();
    const admin = this.kafka.admin();
    try {
      while (!this.joined && !this.stopped) await Promise.race([new Promise((r) => setTimeout(r, 100)), this.stopRequested]);
      await admin.connect();
      for (const [topic, assigned] of Object.entries(this.assignment)) {
        if (!sources.some((s) => this.sourceFor(topic) === s)) continue;
        const offsets = await admin.fetchTopicOffsets(topic);
        for (const { partition, low, high } of offsets) {
          if (!assigned.includes(partition) || BigInt(high) <= BigInt(low)) continue;
          const stream = this.streamOf(topic, partition);
          partitions.set(stream, { low: BigInt(low), target: BigInt(high) - 1n, started: false, reached: false });
          this.durable.set(stream, BigInt(low) - 1n);
          this.consumer.seek({ topic, partition, offset: low });
        }
      }
    } catch (error) {
      this.emit(marker(`failed:replaying the topic from its earliest offset failed: ${(error as Error).message}`));
      return;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    this.logger.info({ run: request.runId, partitions: partitions.size }, "replaying the source's topic from its earliest offsets");
    if (partitions.size === 0) {
      this.emit(marker("complete"));
      return;
    }
    this.replay = { runId: request.runId, sourceId: sources[0]?.id ?? "", partitions };
  }

  /**
   * Follows a replay, told of each partition's last offset read (batches kafkajs hands no message of,
   * only aborted ones and commit markers, through its END_BATCH_PROCESS event): once every partition
   * reached its target, the Run's completion follows in the stream.
   */
  private replayed(stream: string, offset: bigint): void {
    const replay = this.replay;
    const partition = replay?.partitions.get(stream);
    if (!replay || !partition) return;
    if (partition.started && offset >= partition.target) partition.reached = true;
    if (![...replay.partitions.values()].every((p) => p.reached)) return;
    this.replay = undefined;
    this.emit({ sourceId: replay.sourceId, op: "marker", key: "", before: null, after: null, position: { stream: `run:${replay.runId}`, position: "complete" }, commitTime: Date.now() });
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

  ready(): boolean {
    return this.joined && !this.stopped;
  }

}

/** readsTopic, false for a /regex/ that does not compile (its own source's check says so). */
function readsTopicSafely(option: string, topic: string): boolean {
  try {
    return readsTopic(option, topic);
  } catch {
    return false;
  }
}

/** Whether a source's `topic` option is a /regex/ rather than a topic's name. */
const isTopicRegex = (option: string): boolean => option.length > 2 && option.startsWith("/") && option.endsWith("/");

/** The topic option as kafkajs subscribes to it: a RegExp for a /regex/, the name otherwise. */
const subscribed = (option: string): string | RegExp => (isTopicRegex(option) ? new RegExp(option.slice(1, -1)) : option);

/** Whether a source's `topic` option (a name, or /regex/) covers the topic. */
function readsTopic(option: string, topic: string): boolean {
  const wanted = subscribed(option);
  return typeof wanted === "string" ? wanted === topic : wanted.test(topic);
}

export const kafkaDebeziumSource: SourceComponent = {
  type: "kafka-debezium",
  appType: "kafka",
  options: KafkaDebeziumOptions,
  // Where undecodable messages are copied changes nothing applied: the topic is not replayed for it.
  // (The size past which a message is not decoded changes what is applied: a fresh daemon would
  // decode, or set aside, other messages; it is read again.)
  operationalOptions: ["deadLetterTopic"],
  check(source, context) {
    const options = source.options as Static<typeof KafkaDebeziumOptions>;
    if (isTopicRegex(options.topic)) {
      try {
        subscribed(options.topic);
      } catch (error) {
        return [{ field: ["options", "topic"], message: `${options.topic} is not a valid regular expression: ${(error as Error).message}` }];
      }
    }
    // One consumer per app hands each message to the first of its sources that reads the topic: a
    // second source on it would get nothing.
    for (const other of context.sources()) {
      if (other.id === source.id || other.type !== "kafka-debezium" || other.appId !== source.appId) continue;
      const theirs = String((other.options as { topic?: unknown }).topic ?? "");
      const overlap = isTopicRegex(options.topic) ? !isTopicRegex(theirs) && readsTopic(options.topic, theirs) : isTopicRegex(theirs) ? readsTopicSafely(theirs, options.topic) : theirs === options.topic;
      if (overlap) {
        return [{ field: ["options", "topic"], message: `source "${other.id}" of the same kafka app "${source.appId}" reads ${isTopicRegex(options.topic) || isTopicRegex(theirs) ? "a topic this one reads" : `"${options.topic}"`} too (its topic ${theirs}): each message goes to one source only, so one of them would miss it; read a topic with one source` }];
      }
    }
    const dlq = options.deadLetterTopic;
    if (dlq === "." || dlq === "..") return [{ field: ["options", "deadLetterTopic"], message: `"${dlq}" is not a name Kafka gives a topic` }];
    // The source would read its own copies of what it cannot decode, set each aside again and copy it
    // again, without end; another source of the app reading them would set them all aside (and, with
    // its own dead-letter topic read by this one, loop the same way).
    if (dlq !== undefined && readsTopic(options.topic, dlq)) {
      return [{ field: ["options", "deadLetterTopic"], message: `the source reads "${dlq}" itself (topic ${options.topic}): each message it cannot decode would come back, be set aside and copied again without end; choose a topic it does not read` }];
    }
    const reader = dlq === undefined ? undefined : context.sources().find((other) => other.id !== source.id && other.type === "kafka-debezium" && other.appId === source.appId && readsTopicSafely(String((other.options as { topic?: unknown }).topic ?? ""), dlq));
    if (dlq !== undefined && reader) {
      return [{ field: ["options", "deadLetterTopic"], message: `source "${reader.id}" of the same kafka app reads "${dlq}": the messages this one cannot decode would come to it; choose a topic no source of the app reads` }];
    }
    return [];
  },
  metrics: [METRICS.kafkaConsumerLag],
  // Once the group has consumed a topic, a source added on it reads only new messages: it is replayed.
  needsReread: (source, app, positions) => {
    const topic = String(source.options.topic);
    const prefix = `kafka:${app.id}:`;
    return [...positions.keys()].some((stream) => {
      if (!stream.startsWith(prefix)) return false;
      return readsTopic(topic, stream.slice(prefix.length, stream.lastIndexOf(":")));
    });
  },
  // The cluster reached and each named topic there: one that cannot be reached, or a topic not made
  // yet (Debezium makes its topics as it writes), is a warning (the consumer retries once running);
  // refused credentials or authorization are permanent.
  checkLive: async (app, sources) => {
    const { Kafka } = kafkajs();
    const config = kafkaClientConfig(app, pino({ level: "silent" }));
    const admin = new Kafka({ ...config, connectionTimeout: 3000, requestTimeout: 5000, retry: { retries: 0 } }).admin();
    let timer: NodeJS.Timeout | undefined;
    // At most 5 s in all, whatever the brokers do (a start waits for it).
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer within 5 s")), 5000)));
    try {
      await Promise.race([admin.connect(), timeout]);
      const existing = new Set(await Promise.race([admin.listTopics(), timeout]));
      return sources.flatMap((source) => {
        const topic = String((source.options as { topic?: unknown }).topic ?? "");
        if (isTopicRegex(topic) || existing.has(topic)) return [];
        return [{ objectClass: "source" as const, id: source.id, message: `topic ${topic} does not exist on the cluster of app "${app.id}" (yet: the source reads it once it does)`, permanent: false }];
      });
    } catch (error) {
      // A warning even when the cluster refuses the credentials: a kafka app never stops the daemon
      // (its consumer tries again once a minute, and /readyz names the reason).
      const { permanent, reason } = classifyKafkaError(error);
      return [{ objectClass: "app" as const, id: app.id, message: `${permanent ? "refused" : "cannot be reached"}: ${reason}`, permanent: false }];
    } finally {
      clearTimeout(timer);
      await admin.disconnect().catch(() => undefined);
    }
  },
  create: (app, sources, context) => new KafkaDebeziumSource(app, sources, context),
};
