// The RxJS pipeline: changes from every source are cut into batches bounded by size and time (group
// commit: what arrives while a batch commits goes into the next one, so batches grow with load), and
// every unit of work (a batch of changes, a sweep of due time-index entries, a chunk of a group
// backfill) runs one at a time, in order, each in its own durable transaction. After each commit
// the batch's last positions go back to the sources for acknowledgement. Backpressure: when more
// changes are buffered or in flight than the high-water mark, the sources are paused until the
// count falls below the low-water mark.
import { Observable, Subject, concatMap, from, merge, type Subscription } from "rxjs";
import type { BatchResult } from "./apply.js";
import type { Change } from "./change.js";

export interface BackfillTask {
  groupId: string;
  modelId: string;
  /** The last record id done; the next chunk starts after it. */
  after?: string;
  runId: string;
}

/** What the pipeline asks the state to do (state/ implements it). */
export interface CoreOperations {
  applyChanges(changes: readonly Change[]): Promise<BatchResult>;
  /** Re-evaluates every (record, group) whose boundary instant is at or before now. */
  sweep(now: number): Promise<BatchResult | undefined>;
  /** Runs one chunk of a backfill; returns the next task, or undefined when the run is done. */
  backfill(task: BackfillTask): Promise<BackfillTask | undefined>;
  nextBoundary(): number | undefined;
}

export interface PipelineOptions {
  maxBatchSize: number;
  maxBatchDelayMs: number;
  highWaterMark: number;
  lowWaterMark: number;
  clock: () => number;
}

export const DEFAULT_PIPELINE_OPTIONS: PipelineOptions = {
  maxBatchSize: 5000,
  maxBatchDelayMs: 5,
  highWaterMark: 20_000,
  lowWaterMark: 5_000,
  clock: Date.now,
};

export interface CommittedBatch {
  kind: "changes" | "sweep" | "backfill";
  changes: number;
  /** The last position of each stream in the batch: durable now, safe to acknowledge. */
  positions: Map<string, string>;
  /** The newest source commit time of each stream in the batch. */
  commitTimes: Map<string, number>;
  result?: BatchResult;
  seconds: number;
}

export interface PipelineEvents {
  committed(batch: CommittedBatch): void;
  pressure(paused: boolean): void;
  failed(error: Error): void;
}

type Job = { kind: "changes"; changes: Change[] } | { kind: "sweep" } | { kind: "backfill"; task: BackfillTask };

export class Pipeline {
  private readonly jobs$ = new Subject<Job>();
  private inFlight = 0;
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private subscription: Subscription | undefined;
  private draining = false;
  /**
   * Batches of changes handed to the runner and not finished. Only these hold the next batch back:
   * sweeps and backfill chunks (a backfill queues its next chunk from inside the current one) must not,
   * or changes would wait for a whole backfill.
   */
  private batchesInFlight = 0;
  /** Cuts the changes waiting for a batch, if any (set while the change stream is subscribed). */
  private cutWaiting: (() => void) | undefined;

  constructor(
    private readonly changes$: Observable<Change>,
    private readonly ops: CoreOperations,
    private readonly events: PipelineEvents,
    private readonly options: PipelineOptions = DEFAULT_PIPELINE_OPTIONS,
  ) {}

  /** Runs until the change stream completes (sources stopped) and queued work is done. */
  run(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.subscription = merge(this.batches(), this.jobs$)
        .pipe(concatMap((job) => from(this.runJob(job))))
        .subscribe({
          next: (batch) => {
            if (batch) this.events.committed(batch);
            this.scheduleSweep();
          },
          error: (error: Error) => {
            this.clearTimer();
            this.events.failed(error);
            reject(error);
          },
          complete: () => {
            this.clearTimer();
            resolve();
          },
        });
      this.scheduleSweep();
    });
  }

  /**
   * Changes cut into batches: at `maxBatchSize`; when the runner has nothing left to do (everything
   * that arrived while it was busy becomes the next batch at once); or `maxBatchDelayMs` after the
   * first change that found it idle. Counts what is buffered or in flight for backpressure.
   */
  private batches(): Observable<Job> {
    return new Observable<Job>((out) => {
      let waiting: Change[] = [];
      let timer: NodeJS.Timeout | undefined;
      const cut = () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        if (waiting.length === 0) return;
        const changes = waiting;
        waiting = [];
        this.batchesInFlight += 1;
        out.next({ kind: "changes", changes });
      };
      this.cutWaiting = cut;
      const subscription = this.changes$.subscribe({
        next: (change) => {
          this.inFlight += 1;
          if (!this.paused && this.inFlight >= this.options.highWaterMark) this.setPaused(true);
          waiting.push(change);
          if (waiting.length >= this.options.maxBatchSize) cut();
          else if (this.batchesInFlight === 0 && timer === undefined) timer = setTimeout(cut, this.options.maxBatchDelayMs);
        },
        error: (error: unknown) => out.error(error),
        complete: () => {
          cut();
          out.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        if (timer) clearTimeout(timer);
        this.cutWaiting = undefined;
      };
    });
  }

  private enqueue(job: Job): void {
    this.jobs$.next(job);
  }

  /** Queues a group backfill; its chunks interleave with batches of changes. */
  backfill(task: BackfillTask): void {
    if (!this.draining) this.enqueue({ kind: "backfill", task });
  }

  /** Stops accepting timer and backfill work; run() resolves once the change stream completes too. */
  drain(): void {
    this.draining = true;
    this.clearTimer();
    this.jobs$.complete();
  }

  stop(): void {
    this.drain();
    this.subscription?.unsubscribe();
  }

  private async runJob(job: Job): Promise<CommittedBatch | undefined> {
    try {
      return await this.runJobOnce(job);
    } finally {
      if (job.kind === "changes") {
        this.batchesInFlight -= 1;
        // No batch left queued: what arrived meanwhile is the next batch, without waiting for the timer.
        if (this.batchesInFlight === 0) this.cutWaiting?.();
      }
    }
  }

  private async runJobOnce(job: Job): Promise<CommittedBatch | undefined> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    switch (job.kind) {
      case "changes": {
        const result = await this.ops.applyChanges(job.changes);
        const positions = new Map<string, string>();
        const commitTimes = new Map<string, number>();
        for (const change of job.changes) {
          positions.set(change.position.stream, change.position.position);
          if (change.op !== "marker") commitTimes.set(change.position.stream, Math.max(commitTimes.get(change.position.stream) ?? 0, change.commitTime));
        }
        this.inFlight -= job.changes.length;
        if (this.paused && this.inFlight <= this.options.lowWaterMark) this.setPaused(false);
        return { kind: "changes", changes: job.changes.length, positions, commitTimes, result, seconds: seconds() };
      }
      case "sweep": {
        this.timerAt = undefined;
        const result = await this.ops.sweep(this.options.clock());
        return result ? { kind: "sweep", changes: 0, positions: new Map(), commitTimes: new Map(), result, seconds: seconds() } : undefined;
      }
      case "backfill": {
        const next = await this.ops.backfill(job.task);
        if (next) this.backfill(next);
        return { kind: "backfill", changes: 0, positions: new Map(), commitTimes: new Map(), seconds: seconds() };
      }
    }
  }

  private setPaused(paused: boolean): void {
    this.paused = paused;
    this.events.pressure(paused);
  }

  /** Arms one timer for the earliest boundary in the time index (no periodic rescans). */
  private scheduleSweep(): void {
    if (this.draining) return;
    const next = this.ops.nextBoundary();
    if (next === undefined || (this.timerAt !== undefined && this.timerAt <= next)) return;
    this.clearTimer();
    this.timerAt = next;
    this.armTimer(next);
  }

  private armTimer(at: number): void {
    const delay = Math.max(0, at - this.options.clock());
    // setTimeout takes at most 2^31-1 ms (a later boundary re-arms when this one fires), and may fire
    // a millisecond early by the clock: then it waits out the rest, so a sweep never runs before its instant.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.draining) return;
      if (this.options.clock() < at && delay <= 2_147_483_647) this.armTimer(at);
      else this.enqueue({ kind: "sweep" });
    }, Math.min(Math.max(delay, 1), 2_147_483_647));
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }
}
