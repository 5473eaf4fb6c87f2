// The pipeline: the sources' changes, counted for backpressure, cut into batches by group commit,
// and every unit of work (a batch of changes, a sweep of due time-index entries, a chunk of a Run)
// run one at a time, in order, each in its own durable transaction. After each commit the batch's
// last position per stream is reported, for acknowledgement to the source that owns the stream.
import { Subject, concatMap, from, map, merge, type Observable, type Subscription } from "rxjs";
import type { BatchResult } from "../core/apply.js";
import type { Change } from "../core/change.js";
import type { Backpressure } from "./backpressure.js";
import { groupCommit } from "./group-commit.js";

/** What the pipeline asks the state to do (streams/batch.ts implements it over state/). */
export interface CoreOperations {
  applyChanges(changes: readonly Change[]): Promise<BatchResult>;
  /** Re-evaluates every (record, group) whose boundary instant is at or before now. */
  sweep(now: number): Promise<BatchResult | undefined>;
  nextBoundary(): number | undefined;
}

/** Work done a chunk at a time between batches of changes (a Run). */
export interface ChunkedWork {
  /** Runs one chunk in its own durable transaction; resolves false when the work is done. */
  step(): Promise<boolean>;
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
  clock: () => Date.now(),
};

/** The backpressure marks follow the batch size, so a full batch can always form before the sources pause. */
export function pipelineOptions(maxBatchSize: number, maxBatchDelayMs: number): PipelineOptions {
  const { highWaterMark, lowWaterMark } = DEFAULT_PIPELINE_OPTIONS;
  return { ...DEFAULT_PIPELINE_OPTIONS, maxBatchSize, maxBatchDelayMs, highWaterMark: Math.max(highWaterMark, 4 * maxBatchSize), lowWaterMark: Math.max(lowWaterMark, maxBatchSize) };
}

/**
 * A write asked for from outside the stream (the API: replaying dead letters, retrying exports): run
 * once, in its turn, like every other unit of work, so the daemon stays the state's one writer.
 */
export interface Operation<T> {
  run(): Promise<{ value: T; result?: BatchResult }>;
}

/** The pipeline no longer takes work (it is draining or stopped). */
export class PipelineClosedError extends Error {
  readonly code = "PIPELINE_CLOSED";
  constructor() {
    super("the daemon is stopping or reloading; try again");
    this.name = "PipelineClosedError";
  }
}

export interface CommittedBatch {
  kind: "changes" | "sweep" | "run" | "operation";
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
  failed(error: Error): void;
}

type Job =
  | { kind: "changes"; changes: Change[] }
  | { kind: "sweep" }
  | { kind: "run"; work: ChunkedWork }
  | { kind: "operation"; operation: Operation<unknown>; settle: (outcome: { value: unknown } | { error: unknown }) => void };

export class Pipeline {
  private readonly jobs$ = new Subject<Job>();
  /** One emission per finished batch of changes: group commit cuts the next one when none is left. */
  private readonly batchDone$ = new Subject<void>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private subscription: Subscription | undefined;
  private draining = false;

  constructor(
    private readonly changes$: Observable<Change>,
    private readonly ops: CoreOperations,
    private readonly events: PipelineEvents,
    private readonly backpressure: Backpressure,
    private readonly options: PipelineOptions = DEFAULT_PIPELINE_OPTIONS,
  ) {}

  /** Runs until the change stream completes (sources stopped) and queued work is done. */
  run(): Promise<void> {
    return new Promise((resolve, reject) => {
      const batches$ = this.changes$.pipe(
        this.backpressure.count(),
        groupCommit<Change>(this.options, this.batchDone$),
        map((changes): Job => ({ kind: "changes", changes })),
      );
      this.subscription = merge(batches$, this.jobs$)
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

  /** Queues chunked work (a Run); its chunks interleave with batches of changes. */
  schedule(work: ChunkedWork): void {
    if (!this.draining) this.jobs$.next({ kind: "run", work });
  }

  /** Runs an operation in its turn (after the unit of work in progress and those queued before it); resolves with its value once durable. */
  perform<T>(operation: Operation<T>): Promise<T> {
    if (this.draining) return Promise.reject(new PipelineClosedError());
    return new Promise<T>((resolve, reject) => {
      this.jobs$.next({
        kind: "operation",
        operation,
        settle: (outcome) => ("error" in outcome ? reject(outcome.error as Error) : resolve(outcome.value as T)),
      });
    });
  }

  /** Stops accepting timer and Run work; run() resolves once the change stream completes too. */
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
      if (job.kind === "changes") this.batchDone$.next();
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
          // Markers count too: a commit's or a heartbeat's carries its commit time, and an idle keepalive's
          // (everything the server sent is applied) the instant it came, so a stream caught up and quiet
          // reads about 0, not the lag of the last change it applied (a catch-up's, for as long as the
          // tables stay quiet: GrouparooReplicationLagSecondsHigh fired on a stream with nothing behind).
          commitTimes.set(change.position.stream, Math.max(commitTimes.get(change.position.stream) ?? 0, change.commitTime));
        }
        this.backpressure.release(job.changes.length);
        return { kind: "changes", changes: job.changes.length, positions, commitTimes, result, seconds: seconds() };
      }
      case "sweep": {
        this.timerAt = undefined;
        const result = await this.ops.sweep(this.options.clock());
        return result ? { kind: "sweep", changes: 0, positions: new Map(), commitTimes: new Map(), result, seconds: seconds() } : undefined;
      }
      case "run": {
        // A Run queues its next chunk behind whatever arrived meanwhile, so changes never wait for a whole Run.
        if (await job.work.step()) this.schedule(job.work);
        return { kind: "run", changes: 0, positions: new Map(), commitTimes: new Map(), seconds: seconds() };
      }
      case "operation": {
        // An operation's failure is its caller's (a 4xx or 5xx answer), not the pipeline's.
        let done: { value: unknown; result?: BatchResult };
        try {
          done = await job.operation.run();
        } catch (error) {
          job.settle({ error });
          return undefined;
        }
        job.settle({ value: done.value });
        return { kind: "operation", changes: 0, positions: new Map(), commitTimes: new Map(), ...(done.result ? { result: done.result } : {}), seconds: seconds() };
      }
    }
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
      else this.jobs$.next({ kind: "sweep" });
    }, Math.min(Math.max(delay, 1), 2_147_483_647));
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }
}
