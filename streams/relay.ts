// The relay's flow (README, "Relay and workers"): the changes of partitioned models' postgres-cdc
// sources, through the same pipeline as the daemon's (group commit, backpressure, acknowledgement),
// but each batch is routed (core/relay.ts) and published instead of applied: its events are sent and
// acknowledged by the broker first, then the routes it changed and its positions are made durable in the
// relay's state, and only then are the positions acknowledged to the slot. A relay that dies re-sends
// from the last acknowledged position: events may be published twice, never lost, and a worker
// applying one twice ends where it would have (replays are no-ops, ARCHITECTURE.md invariant 4).
import { merge } from "rxjs";
import { emptyBatchResult, type BatchResult } from "../core/apply.js";
import type { Change } from "../core/change.js";
import type { RelayEvent, RelayRouter, RouteState } from "../core/relay.js";
import type { SourceConnector } from "../connectors/types.js";
import type { RelayState, StoredRoute } from "../state/relay.js";
import { PositionRouter } from "./acknowledge.js";
import { Backpressure, type PauseReason } from "./backpressure.js";
import { DEFAULT_PIPELINE_OPTIONS, Pipeline, type CommittedBatch, type PipelineOptions } from "./pipeline.js";

/** Where the routed events go (connectors/kafka/relay-producer.ts); resolves once the broker acknowledged them. */
export interface RelaySink {
  send(events: readonly RelayEvent[]): Promise<void>;
}

export interface RelayFlowEvents {
  committed?(batch: CommittedBatch, events: readonly RelayEvent[]): void;
  failed?(error: Error): void;
  pressure?(reason: PauseReason, full: boolean, paused: boolean): void;
  acknowledgeFailed?(source: SourceConnector, error: unknown): void;
}

export interface RelayFlow {
  pipeline: Pipeline;
  done: Promise<void>;
}

/** The routes a batch reads and changes, over the durable ones: written only once its events are acknowledged. */
class BatchRoutes implements RouteState {
  readonly changed = new Map<string, { sourceId: string; rowKey: string; value: StoredRoute | null }>();

  constructor(private readonly state: RelayState) {}

  private read(sourceId: string, rowKey: string): StoredRoute | undefined {
    const changed = this.changed.get(`${sourceId}\u0000${rowKey}`);
    if (changed) return changed.value ?? undefined;
    return this.state.route(sourceId, rowKey);
  }

  getRoute(sourceId: string, rowKey: string): string | undefined {
    return this.read(sourceId, rowKey)?.route;
  }

  setRoute(sourceId: string, rowKey: string, route: string, snapshotId?: string): void {
    this.changed.set(`${sourceId}\u0000${rowKey}`, { sourceId, rowKey, value: { route, ...(snapshotId === undefined ? {} : { snapshot: snapshotId }) } });
  }

  deleteRoute(sourceId: string, rowKey: string): void {
    this.changed.set(`${sourceId}\u0000${rowKey}`, { sourceId, rowKey, value: null });
  }

  dropRoutes(sourceId: string, except?: string): void {
    const keys = new Set<string>();
    for (const [rowKey] of this.state.routesOf(sourceId)) keys.add(rowKey);
    for (const c of this.changed.values()) if (c.sourceId === sourceId) keys.add(c.rowKey);
    for (const rowKey of keys) {
      const route = this.read(sourceId, rowKey);
      if (route && (except === undefined || route.snapshot !== except)) this.deleteRoute(sourceId, rowKey);
    }
  }
}


export function relayFlow(sources: readonly SourceConnector[], state: RelayState, router: RelayRouter, sink: RelaySink, events: RelayFlowEvents = {}, marks: PipelineOptions = DEFAULT_PIPELINE_OPTIONS): RelayFlow {
  const backpressure = new Backpressure(
    { highWaterMark: marks.highWaterMark, lowWaterMark: marks.lowWaterMark, outboxBound: Number.MAX_SAFE_INTEGER },
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
  const owners = new PositionRouter<SourceConnector>();
  const changes$ = merge(...sources.map((source) => source.changes().pipe(owners.ownedBy(source))));
  let lastEvents: RelayEvent[] = [];
  const publish = async (changes: readonly Change[]): Promise<BatchResult> => {
    const routes = new BatchRoutes(state);
    const out: RelayEvent[] = [];
    const positions = new Map<string, string>();
    const result = emptyBatchResult();
    for (const change of changes) {
      positions.set(change.position.stream, change.position.position);
      const routed = router.route(change, routes);
      for (const e of routed) out.push(e);
      if (change.op === "marker") continue;
      const bySource = result.applied.get(change.sourceId) ?? new Map<string, number>();
      bySource.set(change.op, (bySource.get(change.op) ?? 0) + 1);
      result.applied.set(change.sourceId, bySource);
    }
    if (out.length > 0) await sink.send(out);
    await state.commit(routes.changed, positions);
    lastEvents = out;
    return result;
  };
  const pipeline = new Pipeline(
    changes$,
    { applyChanges: publish, sweep: () => Promise.resolve(undefined), nextBoundary: () => undefined },
    {
      committed: (batch) => {
        if (batch.positions.size > 0) owners.route(batch.positions, (source, error) => events.acknowledgeFailed?.(source, error));
        events.committed?.(batch, lastEvents);
      },
      failed: (error) => events.failed?.(error),
    },
    backpressure,
    marks,
  );
  return { pipeline, done: pipeline.run() };
}
