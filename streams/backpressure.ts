// Backpressure, end to end (invariant 6): the sources are paused while the pipeline holds more changes
// than its high-water mark (buffered or being applied) until fewer than the low-water mark remain, and
// while any destination's outbox holds its bound until it is below half. This is the one owner of the
// decision; the daemon applies it to the sources.
import { tap, type MonoTypeOperatorFunction } from "rxjs";
import type { Store } from "../state/store.js";

export interface BackpressureMarks {
  highWaterMark: number;
  lowWaterMark: number;
  /** Exports waiting per destination above which the sources pause (they resume below half). */
  outboxBound: number;
}

export type PauseReason = "pipeline" | "outbox";

export interface BackpressureEvents {
  /** `reason` became full (or no longer is); `paused` says whether the sources must now be paused. */
  changed(reason: PauseReason, full: boolean, paused: boolean): void;
}

export class Backpressure {
  private inFlight = 0;
  private pipelineFull = false;
  private outboxFull = false;

  constructor(
    private readonly marks: BackpressureMarks,
    private readonly events: BackpressureEvents,
  ) {}

  get paused(): boolean {
    return this.pipelineFull || this.outboxFull;
  }

  /** A destination's outbox is at its bound (until it is below half). */
  get outboxAtBound(): boolean {
    return this.outboxFull;
  }

  /** Changes held by the pipeline (buffered or being applied). */
  get held(): number {
    return this.inFlight;
  }

  /** Counts each change entering the pipeline. */
  count<T>(): MonoTypeOperatorFunction<T> {
    return tap(() => {
      this.inFlight += 1;
      if (!this.pipelineFull && this.inFlight >= this.marks.highWaterMark) this.set("pipeline", true);
    });
  }

  /** `n` changes are durably applied and off the pipeline's hands. */
  release(n: number): void {
    this.inFlight -= n;
    if (this.pipelineFull && this.inFlight <= this.marks.lowWaterMark) this.set("pipeline", false);
  }

  /** Takes the outbox depths as they are now and says whether an outbox holds its bound (until below half). */
  outboxHeld(depths: readonly number[]): boolean {
    this.outboxDepths(depths);
    return this.outboxFull;
  }

  /** The outbox depth of every destination, after a batch planned exports or a delivery completed. */
  outboxDepths(depths: readonly number[]): void {
    const bound = this.marks.outboxBound;
    const full = this.outboxFull ? depths.some((n) => n >= bound / 2) : depths.some((n) => n >= bound);
    if (full !== this.outboxFull) this.set("outbox", full);
  }

  private set(reason: PauseReason, full: boolean): void {
    if (reason === "pipeline") this.pipelineFull = full;
    else this.outboxFull = full;
    this.events.changed(reason, full, this.paused);
  }
}

/**
 * Hands a Backpressure the outbox depths of some destinations, as the store gives them for its
 * comparisons with the bound and half of it (Store.outboxDepthsFrom: nothing is counted while the
 * outbox is far below). While an outbox holds its bound, each delivery answered looks whether they
 * all went below half; when that needs a count (with exports of several destinations, a walk over
 * tens of thousands of them, a few ms; see Store.outboxDepths), it is taken at most once per
 * `everyMs`, and a look skipped is taken once that time has passed, so the sources resume even if no
 * delivery answers after it.
 */
export class OutboxWatch {
  private counted = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly destinationIds: readonly string[],
    private readonly bound: number,
    private readonly backpressure: () => Backpressure | undefined,
    private readonly everyMs = 100,
  ) {}

  /** The depths as the backpressure compares them. */
  depths(): number[] {
    return this.store.outboxDepthsFrom(this.destinationIds, this.bound / 2);
  }

  /** Hands the backpressure the depths now (after a batch that planned exports, at a start). */
  look(): void {
    const backpressure = this.backpressure();
    if (backpressure && !this.stopped) backpressure.outboxDepths(this.depths());
  }

  /** A delivery answered: while an outbox holds its bound, a look, counted at most once per everyMs. */
  delivered(): void {
    const backpressure = this.backpressure();
    if (this.stopped || !backpressure?.outboxAtBound) return;
    const wait = this.counted + this.everyMs - performance.now();
    const depths = this.store.outboxDepthsFrom(this.destinationIds, this.bound / 2, wait <= 0);
    if (depths) {
      if (wait <= 0) this.counted = performance.now();
      backpressure.outboxDepths(depths);
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.delivered();
      }, wait);
      this.timer.unref();
    }
  }

  /** No look after this (the store may close). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
