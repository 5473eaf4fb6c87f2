// The running daemon's status (GET /api/v1/status, the status page, `status --url`): what the state
// holds (streams/inspect.ts stateStatus, the same summary `status --state` prints) and what only the
// running daemon knows: each source connector's state, lag and pause, each destination's readiness,
// oldest waiting export and failures, the Runs in progress, the version and uptime.
import type { Config } from "../../core/config/types.js";
import type { Domain } from "../../core/domain.js";
import type { DestinationConnector, SourceConnector } from "../../connectors/types.js";
import type { Metrics } from "../../metrics/registry.js";
import type { Store } from "../../state/store.js";
import { stateStatus, type StateStatus } from "../../streams/inspect.js";
import type { RunState } from "../../streams/runs.js";

export interface SourceStatus {
  /** The app the connector reads. */
  app: string;
  type: string;
  sources: string[];
  /** streaming: connected and reading; connecting: not (yet) connected, retried; failing: a permanent problem (see problem). */
  state: "streaming" | "connecting" | "failing";
  problem: string | null;
  /** Held back by backpressure (the pipeline or an outbox is full). */
  paused: boolean;
  /** Postgres: WAL written but not yet confirmed by the slot (bytes); null when not reported. */
  lagBytes: number | null;
  /** Its streams: the last durable position, and how far behind the source's commits the last applied batch was. */
  streams: { stream: string; position: string | null; lagSeconds: number | null; kafkaLag: number | null }[];
}

export interface DestinationStatus {
  id: string;
  type: string;
  modelId: string;
  ready: boolean;
  problem: string | null;
  outboxDepth: number;
  /** Age of the oldest export waiting (since its source's commit), or null when none waits. */
  oldestPendingSeconds: number | null;
  /** Answers since the daemon started, by result. */
  exports: { ok: number; info: number; retry: number; deadLetter: number };
  /** Exports of this destination in the dead-letter store now. */
  deadLetters: number;
}

export interface DaemonStatus extends StateStatus {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  ready: boolean;
  /** Why /readyz answers 503, or null. */
  notReady: string | null;
  configDigest: string;
  sources: SourceStatus[];
  destinations: DestinationStatus[];
  /** Groups with their model and size (the summary's `groups` too, by the state's definitions). */
  groupSizes: { id: string; modelId: string; members: number }[];
  /** Runs queued or running, the current one first, then the last ten finished. */
  runs: RunState[];
}

/** What the running daemon hands the status: its current generation and process facts. */
export interface LiveDaemon {
  store: Store;
  metrics: Metrics;
  version: string;
  startedAt: number;
  configDigest: string;
  notReady: string | null;
  config: Config;
  domain: Domain;
  sources: readonly SourceConnector[];
  /** The source ids each connector reads. */
  sourceIdsOf(connector: SourceConnector): string[];
  destinations: readonly DestinationConnector[];
  streams: ReadonlyMap<string, SourceConnector>;
  paused: boolean;
  /** Runs in progress or queued, the current one first. */
  pendingRuns: RunState[];
}

type Sample = { labels: Partial<Record<string, string | number>>; value: number };
const samples = async (metric: { get(): Promise<{ values: Sample[] }> | { values: Sample[] } }): Promise<Sample[]> => (await metric.get()).values;

export async function daemonStatus(live: LiveDaemon, now = Date.now()): Promise<DaemonStatus> {
  const { store, config, domain, metrics } = live;
  const summary = stateStatus(store);
  const lagBytes = await samples(metrics.replicationLagBytes);
  const lagSeconds = await samples(metrics.replicationLagSeconds);
  const kafkaLag = await samples(metrics.kafkaConsumerLag);
  const exportCounts = await samples(metrics.exports);
  const positions = new Map(summary.positions.map((p) => [p.stream, p.position]));
  const appType = new Map(config.apps.map((a) => [a.id, a.type]));

  const sources: SourceStatus[] = live.sources.map((connector) => {
    const problem = connector.problem?.() ?? null;
    const streams = [...live.streams].filter(([stream, owner]) => owner === connector && !stream.startsWith("run:")).map(([stream]) => stream);
    return {
      app: connector.appId,
      type: appType.get(connector.appId) ?? "?",
      sources: live.sourceIdsOf(connector),
      state: problem !== null ? "failing" : connector.ready() ? "streaming" : "connecting",
      problem,
      paused: live.paused,
      lagBytes: lagBytes.find((s) => s.labels.app === connector.appId)?.value ?? null,
      streams: streams.sort().map((stream) => {
        const kafka = /^kafka:[^:]+:(.+):(\d+)$/.exec(stream);
        return {
          stream,
          position: positions.get(stream) ?? null,
          lagSeconds: lagSeconds.find((s) => s.labels.stream === stream)?.value ?? null,
          kafkaLag: kafka ? (kafkaLag.find((s) => s.labels.topic === kafka[1] && String(s.labels.partition) === kafka[2])?.value ?? null) : null,
        };
      }),
    };
  });

  const letters = new Map<string, number>();
  for (const { kind, component, count } of store.deadLetterTally()) if (kind === "export") letters.set(component, count);
  const count = (destination: string, result: string) => exportCounts.find((s) => s.labels.destination === destination && s.labels.result === result)?.value ?? 0;
  const depths = new Map(store.namedOutboxDepths(live.destinations.map((connector) => connector.destinationId)));
  const destinations: DestinationStatus[] = live.destinations.map((connector) => {
    const id = connector.destinationId;
    const object = config.destinations.find((d) => d.id === id);
    const oldest = store.oldestExport(id);
    return {
      id,
      type: object?.type ?? "?",
      modelId: object?.modelId ?? "?",
      ready: connector.ready() && (connector.problem?.() ?? null) === null,
      problem: connector.problem?.() ?? null,
      outboxDepth: depths.get(id) ?? 0,
      oldestPendingSeconds: oldest ? Math.max(0, now - (oldest.waitingSince ?? oldest.commitTime)) / 1000 : null,
      exports: { ok: count(id, "ok"), info: count(id, "info"), retry: count(id, "retry"), deadLetter: count(id, "dead_letter") },
      deadLetters: letters.get(id) ?? 0,
    };
  });

  const finished = summary.runs.filter((r) => r.state !== "queued" && r.state !== "running").slice(-10).reverse();
  return {
    ...summary,
    version: live.version,
    pid: process.pid,
    startedAt: new Date(live.startedAt).toISOString(),
    uptimeSeconds: Math.round((now - live.startedAt) / 100) / 10,
    ready: live.notReady === null,
    notReady: live.notReady,
    configDigest: live.configDigest,
    sources,
    destinations,
    groupSizes: [...domain.groups.values()].map((g) => ({ id: g.id, modelId: g.modelId, members: store.countOf("members", g.id) })),
    runs: [...live.pendingRuns, ...finished],
  };
}
