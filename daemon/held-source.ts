// A source connector held back until the Runs that remove what it is about to read whole are done
// (core/definitions.ts, removedThenReadWhole): a source moved to another app, say, is removed by its
// Run while the new app's connector reads it from a new slot; read first, its rows would be removed
// with the old ones. Also a source whose rows a removal drops as another model's (a model renamed, a
// source moved to another model), read again or not. Reading starts once `released` resolves; a stop before that ends its stream
// without ever reading.
import { Observable, share } from "rxjs";
import type { Change } from "../core/change.js";
import type { RereadRequest, SourceConnector } from "../connectors/types.js";

export class HeldSource implements SourceConnector {
  readonly appId: string;
  /** True until the removals are done (or the source stops). */
  held = true;
  private stopped = false;
  private wake: () => void = () => undefined;
  private readonly changes$: Observable<Change>;
  readonly reread?: (request: RereadRequest) => Promise<void>;

  constructor(
    readonly inner: SourceConnector,
    released: Promise<void>,
    /** The sources it holds back, for the log. */
    readonly sourceIds: readonly string[],
  ) {
    this.appId = inner.appId;
    const stoppedOrReleased = new Promise<void>((resolve) => {
      this.wake = resolve;
      void released.then(resolve);
    });
    this.changes$ = new Observable<Change>((subscriber) => {
      let inner$: { unsubscribe(): void } | undefined;
      let closed = false;
      void stoppedOrReleased.then(() => {
        if (closed) return;
        if (this.stopped) {
          subscriber.complete();
          return;
        }
        this.held = false;
        inner$ = this.inner.changes().subscribe(subscriber);
      });
      return () => {
        closed = true;
        inner$?.unsubscribe();
      };
    }).pipe(share());
    if (inner.reread) this.reread = (request) => (inner.reread as (r: RereadRequest) => Promise<void>).call(inner, request);
  }

  changes(): Observable<Change> {
    return this.changes$;
  }

  acknowledge(positions: ReadonlyMap<string, string>): Promise<void> {
    return this.inner.acknowledge(positions);
  }

  pause(): void {
    this.inner.pause();
  }

  resume(): void {
    this.inner.resume();
  }

  ready(): boolean {
    return !this.held && this.inner.ready();
  }

  problem(): string | null {
    return this.held ? null : (this.inner.problem?.() ?? null);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.inner.stop();
  }
}
