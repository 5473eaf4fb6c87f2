// One partition of a partitioned model on the worker that owns it (README, "Relay and workers"; Kafka
// Streams' task): its own state (a Store under the worker's --state), the daemon's pipeline over it
// (group commit, backpressure, sweeps of the time index, so time-based exits fire only here), the
// delivery of its own outbox, and its changelog. Every state transaction is captured and committed to
// the changelog in one Kafka transaction with the consumer offset it reflects (several state
// transactions per Kafka transaction when they queue up); a batch counts as done, and an export may
// leave, only once that transaction committed. Opening it claims the partition (fencing its previous
// owner), keeps the local copy when it is the changelog's last transaction, else restores it from the
// changelog; closing it lets the batch in flight commit, stops delivery and drops nothing but memory.
import { rmSync } from "node:fs";
import type { Logger } from "pino";
import type { Change } from "../core/change.js";
import { CUT_SHORT_REASON, type Definitions, type OperationalOptions } from "../core/definitions.js";
import type { Domain } from "../core/domain.js";
import type { CapturedTransaction, ChangelogRecord } from "../core/partitions.js";
import type { ChangelogReader, PartitionChangelog } from "../connectors/kafka/changelog.js";
import { ChangeReader } from "../connectors/reader.js";
import type { DestinationConnector } from "../connectors/types.js";
import { STATE_FORMAT, Store, type OutboxEntry } from "../state/store.js";
import { OutboxWatch } from "./backpressure.js";
import { Delivery, type DeliveryOptions, type DeliveryOutcome } from "./delivery.js";
import { flowIntoState, type Flow, type FlowEvents } from "./flow.js";
import type { PipelineOptions } from "./pipeline.js";
import { Runs, type RunEvents } from "./runs.js";

/** The changes of one partition, handed over by the worker's consumer. */
export class PartitionSource extends ChangeReader {
  constructor(
    appId: string,
    private readonly onPause: (paused: boolean) => void,
  ) {
    super(appId);
  }

  push(change: Change): void {
    this.emit(change);
  }

  protected async read(): Promise<void> {
    await this.stopRequested;
  }

  protected async interrupt(): Promise<void> {}

  /** Durability is the changelog's commit (PartitionTask.committed), not the local transaction's. */
  async acknowledge(): Promise<void> {}

  ready(): boolean {
    return !this.stopped;
  }

  protected override paused(paused: boolean): void {
    this.onPause(paused);
  }

  /** Waits while backpressure holds the partition, running `tick` (a heartbeat) meanwhile. */
  waitUntilFlowing(tick: () => Promise<unknown>): Promise<void> {
    return this.waitWhilePaused({ ms: 1000, run: tick });
  }
}

export interface PartitionTaskOptions {
  modelId: string;
  topic: string;
  partition: number;
  /** The stream of the partition's input (kafka:<app>:<topic>:<partition>). */
  stream: string;
  appId: string;
  statePath: string;
  domain: Domain;
  /** The config's definitions of this partition's model (definitionsOfModel): what its state is brought to. */
  definitions: Definitions;
  /** The operational options of the source and destination types (see core/definitions.ts). */
  operational?: OperationalOptions;
  runEvents?: RunEvents;
  changelog: PartitionChangelog;
  reader: ChangelogReader;
  destinations: readonly { connector: DestinationConnector; delivery: DeliveryOptions }[];
  pipeline: PipelineOptions;
  outboxBound: number;
  /** Its lines name the model and the partition (the worker's child logger): they are not repeated here. */
  logger: Logger;
  /** Backpressure on the partition: pause or resume fetching it. */
  pauseInput(paused: boolean): void;
  /** Makes the consumer read the partition from `offset` on. */
  seekInput(offset: string): void;
  events: FlowEvents & {
    delivered?(destinationId: string, outcomes: readonly DeliveryOutcome<OutboxEntry>[], batchSize: number): void;
    changelogCommitted?(records: number, seconds: number): void;
    changelogFailed?(error: Error): void;
    /** The changelog cannot be written (fenced, or failing): the partition must be given up. */
    lost?(error: Error): void;
  };
}

/**
 * The config changes what a partition's state was built with in a way only a re-read of a source
 * follows (a worker gets rows only through the relay, once): the partition is not taken over.
 */
export class UnsupportedConfigChangeError extends Error {
  readonly code = "UNSUPPORTED_CONFIG_CHANGE";
}

/**
 * Events of the partition's input that its state never applied are gone from the model topic (its
 * retention deleted them, or someone deleted records): the partition cannot be brought to what its
 * source holds by reading on, and is not taken over (or given up, if found while running).
 */
export class LostInputError extends Error {
  readonly code = "LOST_INPUT";
}

/** The reason a partition whose next input offset `next` is before the topic's first kept offset `start` stops. */
export function lostInputMessage(modelId: string, partition: number, topic: string, next: bigint, start: bigint): string {
  return (
    `partition ${modelId}/${partition}'s next change is offset ${next} of topic ${topic}, but the topic keeps that partition's events only from offset ${start}: ` +
    `Kafka deleted ${start - next} events (offsets ${next} to ${start - 1n}) before any worker applied them (the topic's retention.ms or retention.bytes, or records deleted by hand), and the partition's state cannot have them. ` +
    `Apply them by deploying anew (the relay on a new slot and publication with an empty --state, the workers on a new consumer group, model topic and changelog with empty --state directories), and give the model topic a retention longer than the workers may stay behind (the partition's state was not changed)`
  );
}

export interface Takeover {
  how: "kept" | "restored";
  records: number;
  seconds: number;
}

export class PartitionTask {
  readonly source: PartitionSource;
  private store: Store | undefined;
  private flow: Flow | undefined;
  /** The Runs that bring the partition's state to the config's definitions (README, "Relay and workers"). */
  private runs: Runs | undefined;
  private deliveries: Delivery<OutboxEntry>[] = [];
  private readonly queue: CapturedTransaction[] = [];
  private committing: Promise<void> | undefined;
  /** When the changelog transaction under way was begun (Date.now()), if one is. */
  private commitSince: number | undefined;
  /** The last input offset committed with the changelog (-1: none). */
  private committedOffset = -1n;
  /** The last input offset the state holds when opened; earlier messages are already in it. */
  private openedOffset = -1n;
  /** The last input offset handed to the pipeline: a message at or before it is in it already. */
  private pushedOffset = -1n;
  private readonly committedSeqs = new Map<string, number>();
  private readonly waiters: { offset: bigint; resolve: () => void }[] = [];
  private suspended = false;
  /** Hands the partition's backpressure its outbox depths (streams/backpressure.ts). */
  private watch: OutboxWatch | undefined;
  private closed = false;
  private failure: Error | undefined;
  readonly opened: Promise<Takeover>;
  private markOpened: (takeover: Takeover) => void = () => undefined;
  private failOpen: (error: Error) => void = () => undefined;

  constructor(private readonly options: PartitionTaskOptions) {
    this.source = new PartitionSource(options.appId, options.pauseInput);
    this.opened = new Promise((resolve, reject) => {
      this.markOpened = resolve;
      this.failOpen = reject;
    });
    this.opened.catch(() => undefined);
  }

  get partition(): number {
    return this.options.partition;
  }

  get modelId(): string {
    return this.options.modelId;
  }

  get topic(): string {
    return this.options.topic;
  }

  get state(): Store | undefined {
    return this.store;
  }

  /** Runs in progress or waiting on this partition. */
  pendingRuns(): ReturnType<Runs["pending"]> {
    return this.runs?.pending() ?? [];
  }

  get isOpen(): boolean {
    return this.flow !== undefined && !this.closed;
  }

  /** Claims the partition, keeps or restores its state, and starts its pipeline and deliveries. */
  async open(): Promise<Takeover> {
    try {
      const takeover = await this.takeOver();
      this.markOpened(takeover);
      return takeover;
    } catch (error) {
      this.failOpen(error as Error);
      throw error;
    }
  }

  private async takeOver(): Promise<Takeover> {
    const { options } = this;
    const started = performance.now();
    const claim = await options.changelog.claim();
    if (this.closed) throw new Error("closed while claiming");
    if (claim.checkpointChangelog !== undefined && claim.checkpointChangelog !== options.changelog.changelogTopic) {
      // The partition's state went to another changelog (the config's changelogTopic changed, the
      // consumer group kept): this one holds at most what came after, so neither a restore from it
      // nor a local copy kept (whose later writes would go to it alone) would stay restorable.
      throw new UnsupportedConfigChangeError(
        `partition ${options.modelId}/${options.partition}'s state is in changelog ${claim.checkpointChangelog} (the consumer group's committed offsets name it), and the config names changelog ${options.changelog.changelogTopic}, which does not hold it: ` +
          `set the model's partitioned.changelogTopic back to ${claim.checkpointChangelog}, or apply the change as a new deployment (the relay on a new slot and publication, the workers on a new consumer group, model topic and changelog, with empty --state directories; the partition's state was not changed)`,
      );
    }
    const capture = (txn: CapturedTransaction) => this.captured(txn);
    // A local copy of an older layout is upgraded only once it is known to be kept.
    let store = Store.open(options.statePath, { capture, deferUpgrade: true });
    let how: Takeover["how"] = "kept";
    let records = 0;
    if (claim.checkpoint === undefined || store.changelogTransaction() !== claim.checkpoint) {
      // The local copy is missing, behind, ahead (a transaction that never committed) or of another owner's history.
      how = "restored";
      await store.close();
      rmSync(options.statePath, { recursive: true, force: true });
      store = Store.open(options.statePath, { capture });
      this.store = store;
      const restoring = store;
      records = await options.reader.restore(options.partition, claim.nonce, (batch: ChangelogRecord[]) => restoring.applyChangelog(batch, { holdTransaction: true }));
      // Complete: only now does the copy name the transaction it reflects (one cut short is restored again).
      await store.completeRestore();
    }
    this.store = store;
    if (store.needsUpgrade) {
      // A partition given up meanwhile stops its upgrade between chunks (the next owner resumes it).
      await store.upgrade(() => {
        if (this.closed) throw new Error("closed while upgrading the partition's state");
      });
      const done = store.upgraded;
      if (done) options.logger.info({ fromLayout: done.from, layout: STATE_FORMAT, keysRewritten: done.keys, ms: done.ms }, "partition state upgraded to this version's layout");
    }
    if (this.closed) throw new Error("closed while restoring");
    const position = store.position(options.stream);
    // The config's definitions against the state's: a change a Run over the state carries out (a group
    // added or changed, a property of another source rebuilt from its stored rows, a destination's
    // exports planned again, what was removed taken out) runs here, in this partition's pipeline, its
    // writes in the changelog like any. A source's rows reach a worker only through the relay, once:
    // so a change that needs them again is refused (whatever this partition has consumed: the relay's
    // topic already holds what the relay read under the old config). A new state has no plan.
    const exportsHeld = () => (this.flow && this.watch ? this.flow.backpressure.outboxHeld(this.watch.depths()) : false);
    const runs = new Runs({ store, domain: options.domain, schedule: (work) => this.flow?.pipeline.schedule(work), connectorOf: () => undefined, logger: options.logger, exportsHeld, ...(options.runEvents ? { events: options.runEvents } : {}), ...(options.operational ? { operational: options.operational } : {}) });
    const needsReread = () => true;
    const empty = store.isEmpty();
    const plan = runs.plan(options.definitions, needsReread, empty);
    const rereads = runs.needingReread(plan);
    if (rereads.length > 0) {
      // A change cut short is redone whole: undoing it here is what needs the rows again.
      const cut = plan.runs.some((r) => r.reason.startsWith(CUT_SHORT_REASON));
      throw new UnsupportedConfigChangeError(
        `the config changes partition ${options.modelId}/${options.partition}'s state in a way a worker cannot follow: ${rereads.join("; ")}. A worker gets a source's rows only through the relay, once, and cannot read them again: ` +
          (cut
            ? "a config change was cut short on this partition (its Runs did not finish), and redoing it under this config needs them again. Start the workers on the config of that change and let its Runs finish (grouparoo-stream runs), or apply this config by starting the relay on a new slot and publication and the workers on a new consumer group and changelog, with empty --state directories (the partition's state was not changed)"
            : "apply this change by starting the relay on a new slot and publication and the workers on a new consumer group and changelog, with empty --state directories, or undo it (the partition's state was not changed)"),
      );
    }
    const next = position === undefined ? 0n : BigInt(position) + 1n;
    // Kafka moves a consumer sought before the partition's first kept event to that event: the
    // events between would be skipped without a word, and the state would never have them.
    const start = await options.changelog.inputStart();
    if (start > next) throw new LostInputError(lostInputMessage(options.modelId, options.partition, options.topic, next, start));
    if (this.closed) throw new Error("closed while restoring");
    this.openedOffset = next - 1n;
    this.committedOffset = this.openedOffset;
    this.pushedOffset = this.openedOffset;
    // Read on right after what the state holds, whatever offset the consumer group had.
    options.seekInput(String(this.openedOffset + 1n));
    for (const { connector } of options.destinations) this.committedSeqs.set(connector.destinationId, store.getMeta<number>(`seq:outbox:${connector.destinationId}`) ?? 0);
    await runs.prepare(options.definitions, needsReread);
    this.start(store);
    this.runs = runs;
    await runs.start(options.definitions, needsReread, empty);
    const seconds = (performance.now() - started) / 1000;
    options.logger.info({ how, restoredRecords: records, seconds: Number(seconds.toFixed(3)), position: position ?? null }, how === "kept" ? "partition taken over with its local state" : "partition restored from the changelog");
    return { how, records, seconds };
  }

  private start(store: Store): void {
    const { options } = this;
    const watch = new OutboxWatch(store, options.destinations.map((d) => d.connector.destinationId), options.outboxBound, () => this.flow?.backpressure);
    this.watch = watch;
    this.deliveries = options.destinations.map(({ connector, delivery }) => {
      const id = connector.destinationId;
      const outbox = store.outboxFor(id);
      return new Delivery<OutboxEntry>(
        connector,
        {
          // Only exports whose planning committed to the changelog leave, and none while suspended.
          pending: (limit, now, inFlight, records) => (this.suspended ? [] : outbox.pending(limit, now, inFlight, records).filter((e) => e.seq <= (this.committedSeqs.get(id) ?? 0))),
          markSending: (entries) => outbox.markSending(entries),
          complete: (outcomes) => outbox.complete(outcomes),
          nextRetryAt: () => outbox.nextRetryAt(),
        },
        {
          completed: (outcomes, size) => {
            options.events.delivered?.(id, outcomes, size);
            watch.delivered();
          },
          failed: (error) => options.logger.error({ err: error, destination: id }, "delivery failed"),
        },
        delivery,
      );
    });
    const flow = flowIntoState(
      [this.source],
      store,
      options.domain,
      {
        ...options.events,
        committed: (batch) => {
          options.events.committed?.(batch);
          if ((batch.result?.exports ?? 0) > 0) watch.look();
        },
      },
      { pipeline: options.pipeline, outboxBound: options.outboxBound },
    );
    this.flow = flow;
    // A partition taken over with its outbox at its bound pauses its input at once.
    watch.look();
    flow.done.catch((error: unknown) => this.fail(error as Error));
    for (const d of this.deliveries) d.start();
  }

  /** A state transaction ran: its writes join the queue for the next changelog transaction. */
  private captured(txn: CapturedTransaction): void {
    this.queue.push(txn);
    this.pump();
  }

  private pump(): void {
    this.committing ??= this.commitQueued().finally(() => {
      this.committing = undefined;
      // A transaction captured while the last commit was ending waits for no other to start one.
      if (this.queue.length > 0 && !this.failure) this.pump();
    });
  }

  private async commitQueued(): Promise<void> {
    while (this.queue.length > 0 && !this.failure) {
      // Let the state transaction that queued this commit become durable first (it is, once flushed).
      await this.store?.root.flushed;
      const txns = this.queue.splice(0);
      const last = txns[txns.length - 1] as CapturedTransaction;
      const byKey = new Map<string, ChangelogRecord>();
      let offset: bigint | undefined;
      const seqs = new Map<string, number>();
      for (const txn of txns) {
        for (const record of txn.records) byKey.set(record.key.toString("latin1"), record);
        const position = txn.positions.get(this.options.stream);
        if (position !== undefined) offset = BigInt(position);
        for (const [d, seq] of txn.outboxSeqs) seqs.set(d, seq);
      }
      const started = performance.now();
      this.commitSince = Date.now();
      try {
        await this.options.changelog.commit([...byKey.values()], offset === undefined ? undefined : String(offset + 1n), last.id);
      } catch (error) {
        this.commitSince = undefined;
        this.options.events.changelogFailed?.(error as Error);
        this.fail(error as Error);
        return;
      }
      this.commitSince = undefined;
      this.options.events.changelogCommitted?.(byKey.size, (performance.now() - started) / 1000);
      if (offset !== undefined && offset > this.committedOffset) this.committedOffset = offset;
      for (const [d, seq] of seqs) this.committedSeqs.set(d, seq);
      for (let i = this.waiters.length - 1; i >= 0; i -= 1) {
        const w = this.waiters[i];
        if (w && w.offset <= this.committedOffset) {
          this.waiters.splice(i, 1);
          w.resolve();
        }
      }
      if (seqs.size > 0) for (const d of this.deliveries) d.wake();
    }
  }

  private fail(error: Error): void {
    if (this.failure || this.closed) return;
    this.failure = error;
    if (error instanceof LostInputError) this.options.logger.error(`${error.message}; giving the partition up`);
    else this.options.logger.error({ err: error }, "the partition's changelog or pipeline failed; giving the partition up");
    for (const w of this.waiters.splice(0)) w.resolve();
    this.options.events.lost?.(error);
  }

  /**
   * Hands a batch of the partition's input to its pipeline (messages the state already holds are
   * skipped) and resolves once the changelog committed it, heartbeating meanwhile; resolves early if
   * the partition is closed or the consumer stops.
   */
  async process(changes: readonly Change[], lastOffset: string, heartbeat: () => Promise<void>, running: () => boolean): Promise<void> {
    while (!this.isOpen) {
      if (this.closed || this.failure || !running()) return;
      await Promise.race([this.opened.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
      if (!this.isOpen) await heartbeat();
    }
    // A batch fetched before the seek to the state's position is stale: it is fetched again.
    if (!running()) return;
    const last = BigInt(lastOffset);
    for (const change of changes) {
      const offset = BigInt(change.position.position);
      if (offset <= this.pushedOffset) continue;
      if (offset !== this.pushedOffset + 1n) {
        // The relay's events have consecutive offsets (an idempotent producer, no transactions, a
        // topic that is not compacted): a gap the topic no longer keeps was deleted by its retention
        // while this partition was behind (Kafka moved the consumer to the first event it keeps).
        const next = this.pushedOffset + 1n;
        const start = await this.options.changelog.inputStart().catch(() => undefined);
        if (start !== undefined && start > next) {
          this.fail(new LostInputError(lostInputMessage(this.options.modelId, this.options.partition, this.options.topic, next, start)));
          return;
        }
        this.options.logger.warn({ expected: String(next), got: String(offset) }, "the partition's input skips offsets");
      }
      this.pushedOffset = offset;
      this.source.push(change);
    }
    if (last <= this.committedOffset) return;
    const committed = new Promise<void>((resolve) => this.waiters.push({ offset: last, resolve }));
    for (;;) {
      const done = await Promise.race([committed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (done || this.closed || !running()) return;
      await heartbeat();
    }
  }

  /** How long the changelog transaction under way has waited for the broker, in ms (undefined: none waits). */
  changelogWaiting(now = Date.now()): number | undefined {
    return this.commitSince === undefined || this.closed ? undefined : now - this.commitSince;
  }

  /** Stops sending exports (a rebalance began: the partition may move). */
  suspend(): void {
    this.suspended = true;
  }

  resume(): void {
    this.suspended = false;
    for (const d of this.deliveries) d.wake();
  }

  /**
   * Closes the partition: its pipeline finishes the batch in flight, deliveries stop (with `drainMs`,
   * after delivering what they can for that long), the changelog commits what is queued, and the
   * state is closed (its files stay: a later owner of the same machine may keep them).
   */
  async close(drainMs?: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.options.reader.cancel(this.options.partition);
    await this.opened.catch(() => undefined);
    // A Run in progress stops at its next chunk; the partition's next owner resumes it.
    this.runs?.stop();
    this.flow?.pipeline.drain();
    await this.source.stop();
    await this.flow?.done.catch(() => undefined);
    this.suspended = drainMs === undefined;
    await Promise.all(this.deliveries.map((d) => (drainMs === undefined ? d.stop(5_000) : d.drain(drainMs))));
    this.watch?.stop();
    while (this.committing) await this.committing;
    for (const w of this.waiters.splice(0)) w.resolve();
    await this.options.changelog.close();
    await this.store?.close();
    this.store = undefined;
  }
}
