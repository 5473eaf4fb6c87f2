// `grouparoo-stream relay` (README, "Relay and workers"): reads the postgres-cdc sources of the
// config's partitioned models (their slots, snapshots and acknowledgement rules as `run` reads them)
// and publishes every change to its model's topic, keyed by the record's primary key, through
// streams/relay.ts. The slot is confirmed only after the broker acknowledged the events (acks from all
// in-sync replicas, idempotent producer) and the relay's own small state (rows' routes) is durable.
import type { Logger } from "pino";
import type { ModelTopics } from "../core/partitions.js";
import { RelayRouter } from "../core/relay.js";
import { RelayProducer } from "../connectors/kafka/relay-producer.js";
import type { SourceConnector } from "../connectors/types.js";
import { createMetrics, createScaleOutMetrics } from "../metrics/registry.js";
import { RelayState } from "../state/relay.js";
import { DEFAULT_PIPELINE_OPTIONS, pipelineOptions } from "../streams/pipeline.js";
import { relayFlow, type RelayFlow } from "../streams/relay.js";
import { createSources } from "./connectors.js";
import { EX_SOFTWARE, withStateLock } from "./exit-codes.js";
import { readPackageInfo } from "./package-info.js";
import { loadPartitioned } from "./partitioned.js";
import { startProbeServer, type Api } from "./api/server.js";
import { recordCommitted, sourceObserver } from "./observe.js";
import { sourceReasons } from "./readiness.js";
import { finishedWithin, runUntilSignalled, type Drainable } from "./signals.js";

export interface RelayOptions {
  config: string;
  plugins?: string[];
  state: string;
  http: string;
  maxBatchSize?: number;
  maxBatchDelayMs?: number;
}

/** The partitioned models of a config, with their topics. */
export class Relay implements Drainable {
  private settle: (code: number) => void = () => undefined;
  readonly finished: Promise<number>;
  private draining = false;
  private server: Api | undefined;

  private constructor(
    private readonly logger: Logger,
    private readonly state: RelayState,
    private readonly sources: SourceConnector[],
    private readonly producers: RelayProducer[],
    private flow: RelayFlow | undefined,
  ) {
    this.finished = new Promise((resolve) => (this.settle = resolve));
  }

  static async start(options: RelayOptions, logger: Logger): Promise<Relay | number> {
    const loaded = await loadPartitioned(options, logger, "the relay has nothing to publish");
    if (typeof loaded === "number") return loaded;
    const { config, domain, registry, models, listen } = loaded;
    const state = RelayState.open(options.state);
    const metrics = createMetrics({ records: () => [], members: () => [], outboxDepth: () => [], runs: () => [], runProgress: () => [] }, { version: readPackageInfo().version, node: process.version });
    const scale = createScaleOutMetrics(metrics.registry, { relayRoutes: () => state.routeCount() });
    // Only the partitioned models' sources are read (the validator made them all postgres-cdc).
    const relayed = config.sources.filter((s) => models.has(s.modelId));
    const { connectors: sources } = createSources({ ...config, sources: relayed }, registry, state.allPositions(), logger, sourceObserver(metrics));
    const byApp = new Map<string, Map<string, ModelTopics>>();
    for (const topics of models.values()) byApp.set(topics.appId, new Map([...(byApp.get(topics.appId) ?? []), [topics.modelId, topics]]));
    const producers = [...byApp].map(([appId, topics]) => {
      const app = config.apps.find((a) => a.id === appId);
      if (!app) throw new Error(`no app ${appId}`);
      return { producer: new RelayProducer(app, topics, logger.child({ app: appId })), models: new Set(topics.keys()) };
    });
    const relay = new Relay(logger, state, sources, producers.map((p) => p.producer), undefined);
    try {
      for (const { producer } of producers) await producer.start();
    } catch (error) {
      logger.error({ err: error }, `the relay cannot reach its Kafka cluster or create the topics: ${(error as Error).message}`);
      await relay.close();
      return EX_SOFTWARE;
    }
    const appOf = new Map(config.sources.map((s) => [s.id, s.appId]));
    const router = new RelayRouter(domain, new Set(models.keys()));
    const sink = {
      send: async (events: Parameters<RelayProducer["send"]>[0]) => {
        for (const { producer, models: own } of producers) {
          const mine = producers.length === 1 ? events : events.filter((e) => own.has(e.modelId));
          if (mine.length > 0) await producer.send(mine, (sourceId) => appOf.get(sourceId) ?? "");
        }
      },
    };
    const marks = pipelineOptions(options.maxBatchSize ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize, options.maxBatchDelayMs ?? DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs);
    relay.flow = relayFlow(
      sources,
      state,
      router,
      sink,
      {
        committed: (batch, events) => {
          recordCommitted(metrics, batch);
          // An event for every partition (a snapshot's end, a truncate) is published once to each.
          for (const e of events) scale.relayEvents.inc({ model: e.modelId, op: e.change.op }, e.target.kind === "every-partition" ? (models.get(e.modelId)?.partitions ?? 1) : 1);
        },
        failed: (error) => logger.error({ err: error }, `the relay stopped: ${error.message}`),
        pressure: (_reason, full, paused) => {
          logger.warn({ paused: full }, full ? "backpressure: pausing sources" : "backpressure released: resuming sources");
          metrics.sourcesPaused.set(paused ? 1 : 0);
        },
        acknowledgeFailed: (source, error) => logger.warn({ err: error, app: source.appId }, "acknowledging positions failed"),
      },
      marks,
    );
    relay.flow.done.then(
      () => void relay.stop(0),
      () => void relay.stop(EX_SOFTWARE),
    );
    try {
      relay.server = await startProbeServer({ notReady: () => relay.notReady(), metrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }) }, listen);
    } catch (error) {
      logger.error({ err: error, http: options.http }, "cannot listen for HTTP");
      await relay.stop(EX_SOFTWARE);
      return EX_SOFTWARE;
    }
    logger.info({ models: [...models.values()].map((m) => ({ model: m.modelId, topic: m.topic, partitions: m.partitions })), http: options.http }, "grouparoo-stream relay running");
    return relay;
  }

  notReady(): string | null {
    if (this.draining) return "draining";
    // A permanent problem (a captured table gone or made again, which a relay cannot read again) names
    // its app and why, as `run`'s /readyz does; before 2026-12-03 only a lost connection made it unready.
    const reasons = sourceReasons(this.sources);
    for (const problem of new Set(this.producers.map((p) => p.problem()).filter((p) => p !== null))) reasons.push(problem);
    return reasons.length > 0 ? reasons.join("; ") : null;
  }

  drain(signal: string): Promise<void> {
    this.logger.info({ signal }, "draining");
    return this.stop(0);
  }

  private async stop(code: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.flow?.pipeline.drain();
    // At most 10 s for the sources to stop (their last events published and confirmed); said when it runs out.
    if (!(await finishedWithin(Promise.allSettled(this.sources.map((s) => s.stop())), 10_000))) this.logger.warn({ apps: this.sources.map((s) => s.appId) }, "the sources did not stop within 10 s; the relay stops without waiting for them (what they did not confirm is read again at the next start)");
    // The batch in flight is published, then its routes and positions made durable; a broker that does
    // not acknowledge it (kafkajs retries without end) held the drain for ever before 2026-12-03.
    // Closing the producers below fails that send: nothing of the batch is confirmed to the slot.
    const flowing = this.flow?.done.catch(() => undefined);
    const stalled = !(await finishedWithin(flowing, 10_000));
    if (stalled) this.logger.warn("the batch in flight was not published within 10 s (the broker does not acknowledge it); the relay stops without it (what the slot did not confirm is read again at the next start)");
    await this.server?.close();
    await this.close();
    if (stalled) await Promise.race([flowing, new Promise((r) => setTimeout(r, 5_000).unref())]);
    this.logger.info({ code }, "stopped");
    this.settle(code);
  }

  private async close(): Promise<void> {
    await Promise.all(this.producers.map((p) => p.stop()));
    await this.state.close();
  }
}

export function runRelay(options: RelayOptions, logger: Logger): Promise<number> {
  return withStateLock(options.state, () => runUntilSignalled(() => Relay.start(options, logger), logger, "relay"));
}
