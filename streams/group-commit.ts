// Group commit as an operator: changes are cut into batches of at most `maxBatchSize`; while the
// runner applies a batch, what arrives waits and becomes the next batch as soon as every batch handed
// over is done (so batches grow with the load: one change at a time when quiet, up to the maximum under
// a backlog); a change that finds the runner idle waits at most `maxBatchDelayMs` for company.
import { Observable, type OperatorFunction } from "rxjs";

export interface GroupCommitOptions {
  maxBatchSize: number;
  maxBatchDelayMs: number;
}

/** `done$` emits once each time the runner finished a batch this operator handed over. */
export function groupCommit<T>(options: GroupCommitOptions, done$: Observable<void>): OperatorFunction<T, T[]> {
  return (source) =>
    new Observable<T[]>((out) => {
      let waiting: T[] = [];
      let timer: NodeJS.Timeout | undefined;
      /** Batches handed over and not finished: only these hold the next batch back. */
      let handedOver = 0;
      const cut = () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        if (waiting.length === 0) return;
        const batch = waiting;
        waiting = [];
        handedOver += 1;
        out.next(batch);
      };
      const finished = done$.subscribe(() => {
        handedOver -= 1;
        // Nothing left in the runner's hands: what arrived meanwhile is the next batch, without the delay.
        if (handedOver === 0) cut();
      });
      const subscription = source.subscribe({
        next: (item) => {
          waiting.push(item);
          if (waiting.length >= options.maxBatchSize) cut();
          else if (handedOver === 0 && timer === undefined) timer = setTimeout(cut, options.maxBatchDelayMs);
        },
        error: (error: unknown) => out.error(error),
        complete: () => {
          cut();
          out.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        finished.unsubscribe();
        if (timer) clearTimeout(timer);
      };
    });
}
