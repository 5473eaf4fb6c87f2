// Delivery from the durable outbox to one destination: batches bounded by count and bytes, up to
// `concurrency` batches in flight, a rate limit, per-record results (ok, info = skipped, error =
// retried with exponential backoff and jitter, honouring Retry-After, then dead-lettered), and a batch
// rejected as a whole split in halves until the bad records are isolated. Exports leave the outbox
// only when the destination acknowledged them (the store's `complete`), so delivery is at least once.
import { DeliveryError, EXPORT_RESULT_STATUSES, type DeliverableExport, type DestinationConnector } from "../connectors/types.js";

export interface DeliveryEntry extends DeliverableExport {
  attempts?: number;
}

/**
 * What a destination is given of an outbox entry: the export as the README documents it, none of the
 * outbox's own bookkeeping (attempts, the baseline it was planned against, whether it is being sent).
 */
export function deliverable(e: DeliverableExport): DeliverableExport {
  return {
    seq: e.seq,
    destinationId: e.destinationId,
    recordId: e.recordId,
    oldRecordProperties: e.oldRecordProperties,
    newRecordProperties: e.newRecordProperties,
    oldGroups: e.oldGroups,
    newGroups: e.newGroups,
    toDelete: e.toDelete,
    updateOnly: e.updateOnly,
    commitTime: e.commitTime,
  };
}

export interface DeliveryOutcome<E extends DeliveryEntry> {
  entry: E;
  status: "ok" | "info" | "error";
  message?: string;
  /** For errors: the next attempt (epoch ms); undefined = no more attempts (dead letter). */
  retryAt?: number;
  /** For errors: no answer for this export came back (the request failed as a whole, or the answer left it out), so it may have been applied. */
  mayHaveLanded?: boolean;
  /** Once completed, for an export that became a dead letter: the dead letter's own seq (what the API and the CLI name it by). */
  deadLetterSeq?: number;
}

/** The outbox of one destination (state/ implements it). */
export interface DeliveryStore<E extends DeliveryEntry> {
  /** Oldest first, at most one per record, none of `inFlight` (seqs) or `recordsInFlight`. */
  pending(limit: number, now: number, inFlight: ReadonlySet<number>, recordsInFlight: ReadonlySet<string>): E[];
  /**
   * Durably notes that these exports are being sent (a newer export then queues behind, not over,
   * them); resolves with those still queued, the only ones to send (the others were superseded since
   * they were read).
   */
  markSending(entries: readonly E[]): Promise<E[]>;
  /** Records the outcomes; may resolve with the seq of each dead letter made, by its export's seq. */
  complete(outcomes: readonly DeliveryOutcome<E>[]): Promise<ReadonlyMap<number, number> | void>;
  nextRetryAt(): number | undefined;
}

/**
 * The exports a destination has in flight (seqs) and their records. The loops of one destination
 * across reloads share them: a batch of the config before a reload that outlived its loop's stop is
 * still being answered, and the next loop must neither send it again nor send a newer export of its
 * records before it is answered (it would land after that newer one).
 */
export interface InFlight {
  seqs: Set<number>;
  records: Set<string>;
  /** The running loops sharing them, woken when a batch of any of them is answered. */
  loops?: Set<() => void>;
}

export interface DeliveryOptions {
  batchSize: number;
  maxBatchBytes: number;
  concurrency: number;
  /** Exports per second; 0 = unlimited. */
  ratePerSecond: number;
  maxAttempts: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  clock: () => number;
  random: () => number;
}

/** The longest delay setTimeout takes as given. */
const MAX_TIMER_MS = 2_147_483_647;

export const DEFAULT_DELIVERY_OPTIONS: DeliveryOptions = {
  batchSize: 100,
  maxBatchBytes: 1_048_576,
  concurrency: 2,
  ratePerSecond: 0,
  maxAttempts: 10,
  baseBackoffMs: 200,
  maxBackoffMs: 60_000,
  clock: () => Date.now(),
  random: Math.random,
};

export interface DeliveryEvents<E extends DeliveryEntry> {
  /** After the outcomes of a batch are durable. */
  completed(outcomes: readonly DeliveryOutcome<E>[], batchSize: number): void;
  failed(error: Error): void;
}

export class Delivery<E extends DeliveryEntry> {
  private readonly inFlight: Set<number>;
  private readonly recordsInFlight: Set<string>;
  private readonly loops: Set<() => void>;
  private readonly wakeThis = () => this.wake();
  private batches = 0;
  private running = false;
  private stopped = false;
  /** When a send last failed outside the destination (the state refusing a write): the loop waits a second. */
  private failedAt: number | undefined;
  private wakeUp: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private tokens: number;
  private tokensAt: number;

  constructor(
    private readonly connector: DestinationConnector,
    private readonly store: DeliveryStore<E>,
    private readonly events: DeliveryEvents<E>,
    private readonly options: DeliveryOptions = DEFAULT_DELIVERY_OPTIONS,
    inFlight: InFlight = { seqs: new Set(), records: new Set() },
  ) {
    this.inFlight = inFlight.seqs;
    this.recordsInFlight = inFlight.records;
    this.loops = inFlight.loops ??= new Set();
    this.tokens = options.ratePerSecond;
    this.tokensAt = options.clock();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loops.add(this.wakeThis);
    this.loopDone = this.loop();
  }

  /** New exports are in the outbox. */
  wake(): void {
    const wake = this.wakeUp;
    this.wakeUp = undefined;
    wake?.();
  }

  /** True when nothing is queued for now and nothing is in flight. */
  idle(): boolean {
    return this.batches === 0 && this.store.pending(1, this.options.clock(), this.inFlight, this.recordsInFlight).length === 0;
  }

  /** Delivers what it can until the outbox is idle or `timeoutMs` passed, then stops. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.idle() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.stop(Math.max(0, deadline - Date.now()));
  }

  /** Stops taking work and waits up to `timeoutMs` for batches in flight (unanswered ones stay in the outbox). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopped = true;
    this.loops.delete(this.wakeThis);
    this.wake();
    await this.loopDone;
    const deadline = Date.now() + timeoutMs;
    while (this.batches > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  private sleep(until: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      // setTimeout fires at once for a delay past 2^31-1 ms (a Retry-After of weeks would spin): wait
      // at most that long; the loop looks again when it wakes.
      const delay = until === undefined ? 0 : Math.min(MAX_TIMER_MS, Math.max(0, until - this.options.clock()));
      const timer = until === undefined ? undefined : setTimeout(() => this.wake(), delay);
      this.wakeUp = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  }

  private takeTokens(wanted: number): number {
    if (this.options.ratePerSecond <= 0) return wanted;
    const now = this.options.clock();
    this.tokens = Math.min(this.options.ratePerSecond, this.tokens + ((now - this.tokensAt) / 1000) * this.options.ratePerSecond);
    this.tokensAt = now;
    const granted = Math.min(wanted, Math.floor(this.tokens));
    this.tokens -= granted;
    return granted;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const pauseUntil = this.failedAt === undefined ? undefined : this.failedAt + 1000;
      if (pauseUntil !== undefined && this.options.clock() < pauseUntil) {
        await this.sleep(pauseUntil);
        continue;
      }
      if (this.batches >= this.options.concurrency) {
        await this.sleep(undefined);
        continue;
      }
      const now = this.options.clock();
      const candidates = this.store.pending(this.options.batchSize, now, this.inFlight, this.recordsInFlight);
      if (candidates.length === 0) {
        const retryAt = this.store.nextRetryAt();
        await this.sleep(retryAt !== undefined && retryAt > now ? retryAt : now + 1000);
        continue;
      }
      const allowed = this.takeTokens(candidates.length);
      if (allowed === 0) {
        await this.sleep(now + Math.ceil(1000 / this.options.ratePerSecond));
        continue;
      }
      const batch: E[] = [];
      let bytes = 0;
      for (const entry of candidates.slice(0, allowed)) {
        // Its size as sent: the export without the outbox's bookkeeping, in UTF-8 bytes (a string's
        // length counts UTF-16 units: text outside ASCII took up to three times the bound).
        const size = Buffer.byteLength(JSON.stringify(deliverable(entry)));
        if (batch.length > 0 && bytes + size > this.options.maxBatchBytes) break;
        batch.push(entry);
        bytes += size;
      }
      for (const entry of batch) {
        this.inFlight.add(entry.seq);
        this.recordsInFlight.add(entry.recordId);
      }
      this.batches += 1;
      void this.send(batch)
        .catch((error: Error) => {
          this.failedAt = this.options.clock();
          this.events.failed(error);
        })
        .finally(() => {
          for (const entry of batch) {
            this.inFlight.delete(entry.seq);
            this.recordsInFlight.delete(entry.recordId);
          }
          this.batches -= 1;
          // Its records may hold back exports another loop of this destination waits to send (after a reload).
          this.wake();
          for (const wake of this.loops) wake();
        });
    }
  }

  private async send(read: E[]): Promise<void> {
    const batch = await this.store.markSending(read);
    if (batch.length === 0) return;
    const outcomes = await this.attempt(batch);
    const lettered = await this.store.complete(outcomes);
    const completed = lettered && lettered.size > 0 ? outcomes.map((o) => (lettered.has(o.entry.seq) ? { ...o, deadLetterSeq: lettered.get(o.entry.seq) } : o)) : outcomes;
    this.events.completed(completed, batch.length);
  }

  private backoff(attempts: number, retryAfterMs?: number): number {
    const exponential = Math.min(this.options.maxBackoffMs, this.options.baseBackoffMs * 2 ** attempts);
    const jittered = exponential * (0.5 + this.options.random() / 2);
    return Math.max(jittered, retryAfterMs ?? 0);
  }

  private failure(entry: E, message: string, retryable: boolean, mayHaveLanded: boolean, retryAfterMs?: number): DeliveryOutcome<E> {
    const attempts = (entry.attempts ?? 0) + 1;
    const unknown = mayHaveLanded ? { mayHaveLanded } : {};
    // While the destination has a problem of its own (a missing table, a full disk: named on /readyz),
    // its exports wait for it to be fixed, however long: nothing is wrong with them.
    const waiting = retryable && this.connector.problem?.() != null;
    if (!retryable || (attempts >= this.options.maxAttempts && !waiting)) return { entry, status: "error", message, ...unknown };
    return { entry, status: "error", message, retryAt: this.options.clock() + this.backoff(attempts - 1, retryAfterMs), ...unknown };
  }

  private async attempt(batch: E[]): Promise<DeliveryOutcome<E>[]> {
    try {
      const results = await this.connector.deliver(batch.map(deliverable));
      const bySeq = new Map(results.map((r) => [r.seq, r]));
      return batch.map((entry) => {
        const result = bySeq.get(entry.seq);
        if (!result) return this.failure(entry, "the destination returned no result for this export", true, true);
        // A status outside the contract (a plugin's, or a remote answer passed on) is no answer either:
        // it must not reach the outbox's results or a metric's label.
        if (!EXPORT_RESULT_STATUSES.has(result.status)) return this.failure(entry, `the destination returned an unknown status ${(JSON.stringify(result.status) ?? String(result.status)).slice(0, 100)} for this export`, true, true);
        if (result.status === "error") return this.failure(entry, result.message ?? "rejected by the destination", true, false);
        return { entry, status: result.status, ...(result.message ? { message: result.message } : {}) };
      });
    } catch (error) {
      const e = error instanceof DeliveryError ? error : new DeliveryError((error as Error).message, true);
      if (!e.retryable && batch.length > 1) {
        // Rejected as a whole: split until the records it objects to are alone.
        const half = Math.ceil(batch.length / 2);
        return [...(await this.attempt(batch.slice(0, half))), ...(await this.attempt(batch.slice(half)))];
      }
      return batch.map((entry) => this.failure(entry, e.message, e.retryable, true, e.retryAfterMs));
    }
  }
}
