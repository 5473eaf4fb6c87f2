// The daemon's flow from its sources into the state, assembled once for the daemon, the benchmarks
// and the tests: the sources' changes (each tagged with its source, so positions go back to their
// owner), backpressure that pauses every source, the pipeline applying batches and sweeps to the
// state, and acknowledgement after each durable commit.
import { merge, tap } from "rxjs";
import type { Change } from "../core/change.js";
import type { Domain } from "../core/domain.js";
import type { SourceConnector } from "../connectors/types.js";
import type { Store } from "../state/store.js";
import { PositionRouter } from "./acknowledge.js";
import { Backpressure, type PauseReason } from "./backpressure.js";
import { applyBatch, sweep } from "./batch.js";
import { DEFAULT_PIPELINE_OPTIONS, Pipeline, type CommittedBatch, type PipelineOptions } from "./pipeline.js";

export interface FlowEvents {
  /** After a batch is durable and its positions were handed to their sources. */
  committed?(batch: CommittedBatch): void;
  failed?(error: Error): void;
  /** Backpressure changed; the sources were paused or resumed accordingly. */
  pressure?(reason: PauseReason, full: boolean, paused: boolean): void;
  /** A source refused an acknowledgement (it is retried with the next batch). */
  acknowledgeFailed?(source: SourceConnector, error: unknown): void;
  /** Each change as it enters the pipeline. */
  received?(change: Change): void;
}

export interface FlowOptions {
  pipeline?: PipelineOptions;
  /** Exports waiting per destination above which the sources pause (they resume below half). */
  outboxBound?: number;
  /** Awaited before each batch of changes is applied (tests hold commits back with it). */
  beforeApply?: (changes: readonly Change[]) => Promise<void> | void;
}

export interface Flow {
  pipeline: Pipeline;
  backpressure: Backpressure;
  /** Resolves when the sources completed and queued work is done; rejects when the pipeline failed. */
  done: Promise<void>;
  /** The streams seen since the flow started, and the source reading each. */
  streams(): ReadonlyMap<string, SourceConnector>;
}

export function flowIntoState(sources: readonly SourceConnector[], store: Store, domain: Domain, events: FlowEvents = {}, options: FlowOptions = {}): Flow {
  const marks = options.pipeline ?? DEFAULT_PIPELINE_OPTIONS;
  const backpressure = new Backpressure(
    { highWaterMark: marks.highWaterMark, lowWaterMark: marks.lowWaterMark, outboxBound: options.outboxBound ?? 100_000 },
    {
      changed: (reason, full, paused) => {
        for (const source of sources) {
          if (paused) source.pause();
          else source.resume();
        }
        events.pressure?.(reason, full, paused);
      },
    },
  );
  const router = new PositionRouter<SourceConnector>();
  const received = events.received;
  const tagged = sources.map((source) => source.changes().pipe(router.ownedBy(source)));
  const changes$ = received ? merge(...tagged).pipe(tap(received)) : merge(...tagged);
  const beforeApply = options.beforeApply;
  const pipeline = new Pipeline(
    changes$,
    {
      applyChanges: async (changes) => {
        if (beforeApply) await beforeApply(changes);
        return applyBatch(store, domain, changes, Date.now());
      },
      sweep: (now) => sweep(store, domain, now),
      nextBoundary: () => store.nextBoundaryInstant(),
    },
    {
      committed: (batch) => {
        if (batch.positions.size > 0) router.route(batch.positions, (source, error) => events.acknowledgeFailed?.(source, error));
        events.committed?.(batch);
      },
      failed: (error) => events.failed?.(error),
    },
    backpressure,
    marks,
  );
  return { pipeline, backpressure, done: pipeline.run(), streams: () => router.streams() };
}
