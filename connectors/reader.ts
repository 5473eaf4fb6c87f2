// What every source connector shares: its changes as one shared stream (reading starts with the first
// subscriber and stops when the last one unsubscribes, or on stop()), the pause gate backpressure
// closes, and a stop that waits until what was read has been handed over.
import { Observable, share, type Subscriber } from "rxjs";
import type { Change } from "../core/change.js";
import { PauseGate } from "./pause.js";
import type { SourceConnector } from "./types.js";

export abstract class ChangeReader implements SourceConnector {
  protected stopped = false;
  protected readonly gate = new PauseGate();
  /** Resolves when stop() is called, for waits that must end early. */
  protected readonly stopRequested: Promise<void>;
  private requestStop: () => void = () => undefined;
  private subscriber: Subscriber<Change> | undefined;
  private reading: Promise<void> | undefined;
  private readonly changes$: Observable<Change>;

  constructor(readonly appId: string) {
    this.stopRequested = new Promise<void>((resolve) => (this.requestStop = resolve));
    this.changes$ = new Observable<Change>((subscriber) => {
      this.subscriber = subscriber;
      this.reading = this.read().then(
        () => subscriber.complete(),
        (error: unknown) => subscriber.error(error),
      );
      return () => {
        this.subscriber = undefined;
        if (!this.stopped) void this.stop();
      };
    }).pipe(share());
  }

  changes(): Observable<Change> {
    return this.changes$;
  }

  /** Reads until stopped, emitting changes; resolves once reading ended after stop(), rejects on a final error. */
  protected abstract read(): Promise<void>;

  /** Ends what read() waits on (connections, consumers, timers); called once by stop(). */
  protected abstract interrupt(): Promise<void>;

  abstract acknowledge(positions: ReadonlyMap<string, string>): Promise<void>;
  abstract ready(): boolean;

  protected emit(change: Change): void {
    this.subscriber?.next(change);
  }

  pause(): void {
    // A stopped reader is not paused again (backpressure can still close during a drain): a paused
    // socket would hold up a connection still opening, and nothing resumes it.
    if (this.stopped) return;
    if (this.gate.pause()) this.paused(true);
  }

  resume(): void {
    if (this.gate.resume()) this.paused(false);
  }

  /** Called when the gate closes or opens: a connector stops or restarts its own reading here. */
  protected paused(_paused: boolean): void {}

  /** Waits while paused (and not stopped). */
  protected waitWhilePaused(tick?: { ms: number; run: () => Promise<unknown> }): Promise<void> {
    return this.gate.wait(() => this.stopped, tick);
  }

  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.requestStop();
      this.resume();
      this.gate.wake();
      await this.interrupt();
    }
    await this.reading;
  }
}
