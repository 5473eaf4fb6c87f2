// `grouparoo-stream run`: loads the config, opens the state, starts the declared sources through
// their connectors, runs the pipeline, serves HTTP, and on SIGTERM / SIGINT drains: /readyz turns
// 503, sources stop reading, the batch in flight commits and is acknowledged, and the process exits 0.
import type { Server } from "node:http";
import { merge, type Observable } from "rxjs";
import type { Logger } from "pino";
import { builtinConnectors } from "../connectors/builtin.js";
import type { ConnectorRegistry, DestinationConnector, SourceConnector, SourceObserver, SourcePlugin } from "../connectors/types.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery, type DeliveryOptions, type DeliveryOutcome } from "../streams/delivery.js";
import { createMetrics, type Metrics } from "../metrics/registry.js";
import { Store, type OutboxEntry, type RunState } from "../state/store.js";
import type { Change } from "../streams/change.js";
import { compileDomain, type Domain } from "../streams/domain.js";
import { DEFAULT_PIPELINE_OPTIONS, Pipeline, type BackfillTask, type CommittedBatch, type PipelineOptions } from "../streams/pipeline.js";
import { formatIssue } from "./config/issues.js";
import { loadConfig, type Config } from "./config/validate.js";
import { parseListen, startHttpServer } from "./http.js";
import { createLogger } from "./logger.js";
import { loadPlugins } from "./plugins.js";
import { EX_CONFIG } from "./commands/validate.js";

export interface RunOptions {
  config: string;
  /** Plugin packages (or paths) to load, resolved from the working directory. */
  plugins?: string[];
  state: string;
  http: string;
  maxBatchSize?: number;
  maxBatchDelayMs?: number;
  /** How long SIGTERM keeps delivering the outbox before exiting. */
  drainTimeoutMs?: number;
  /** Exports waiting per destination above which the sources pause (they resume below half). */
  outboxBound?: number;
  /** Delivery tuning for every destination. */
  delivery?: Partial<DeliveryOptions>;
}

export const EX_SOFTWARE = 70;


function createSources(config: Config, registry: ConnectorRegistry, store: Store, logger: Logger, observer: SourceObserver): SourceConnector[] | string {
  // One connector per app and plugin: a postgres app's postgres-cdc sources share one slot, its
  // polling sources one poller.
  const groups = new Map<string, { plugin: SourcePlugin; appId: string; sources: Config["sources"] }>();
  for (const source of config.sources) {
    const plugin = registry.sourcePlugin(source.type);
    if (!plugin) return `${source.origin.file}: source "${source.id}": type: no connector for ${source.type} sources in this build`;
    const key = `${source.appId}\u0000${plugin.sourceTypes.join(",")}`;
    const group = groups.get(key) ?? { plugin, appId: source.appId, sources: [] };
    group.sources.push(source);
    groups.set(key, group);
  }
  const connectors: SourceConnector[] = [];
  for (const { plugin, appId, sources } of groups.values()) {
    const app = config.apps.find((a) => a.id === appId);
    if (!app) continue;
    const ids = new Set(sources.map((s) => s.id));
    connectors.push(
      plugin.create(app, sources, {
        logger: logger.child({ app: appId }),
        positions: store.allPositions(),
        observer,
        schedules: config.schedules.filter((s) => ids.has(s.sourceId)),
      }),
    );
  }
  return connectors;
}

function recordCommitted(metrics: Metrics, batch: CommittedBatch): void {
  if (!batch.result) return;
  if (batch.kind === "changes") {
    metrics.batchApplySeconds.observe(batch.seconds);
    metrics.batchChanges.observe(batch.changes);
    const now = Date.now();
    for (const [stream, commitTime] of batch.commitTimes) metrics.replicationLagSeconds.set({ stream }, Math.max(0, now - commitTime) / 1000);
  }
  for (const [source, ops] of batch.result.applied) for (const [op, n] of ops) metrics.changesApplied.inc({ source, op }, n);
  for (const [group, delta] of batch.result.memberDelta) if (delta !== 0) metrics.groupTransitions.inc({ group, direction: delta > 0 ? "enter" : "leave" }, Math.abs(delta));
  for (const [source, kinds] of batch.result.deadLettersBySource) for (const [kind, n] of kinds) metrics.deadLetters.inc({ component: source, kind }, n);
}

function createDestinations(config: Config, registry: ConnectorRegistry, logger: Logger): DestinationConnector[] | string {
  const connectors: DestinationConnector[] = [];
  const types = new Map(config.properties.map((p) => [p.id, p.type]));
  for (const destination of config.destinations) {
    const app = config.apps.find((a) => a.id === destination.appId);
    const plugin = registry.destinationPlugin(destination.type);
    if (!app) continue;
    if (!plugin) return `${destination.origin.file}: destination "${destination.id}": type: no connector for ${destination.type} destinations in this build`;
    const fieldTypes = Object.fromEntries(Object.entries(destination.mapping).flatMap(([remote, propertyId]) => {
      const type = types.get(propertyId);
      return type ? [[remote, type]] : [];
    }));
    connectors.push(plugin.create(destination, app, { logger: logger.child({ destination: destination.id }), fieldTypes }));
  }
  return connectors;
}

function recordDelivered(metrics: Metrics, destinationId: string, outcomes: readonly DeliveryOutcome<OutboxEntry>[], batchSize: number): void {
  metrics.deliveryBatchSize.observe({ destination: destinationId }, batchSize);
  const now = Date.now();
  for (const outcome of outcomes) {
    const result = outcome.status === "error" ? (outcome.retryAt === undefined ? "dead_letter" : "retry") : outcome.status;
    metrics.exports.inc({ destination: destinationId, result });
    if (outcome.status === "ok") metrics.endToEndLatency.observe({ destination: destinationId }, Math.max(0, now - outcome.entry.commitTime) / 1000);
  }
}

/** Starts the Runs that backfill new or changed groups over the records already held. */
async function startBackfills(domain: Domain, store: Store, pipeline: Pipeline, logger: Logger): Promise<void> {
  for (const group of domain.groups.values()) {
    if (store.getMeta<string>(`group:${group.id}`) === group.fingerprint) continue;
    const run: RunState = { id: `backfill:${group.id}:${Date.now()}`, kind: "backfill", groupId: group.id, state: "running", processed: 0, startedAt: Date.now() };
    await store.putMeta(`run:${run.id}`, run);
    logger.info({ run: run.id, group: group.id }, "group is new or changed: backfilling it over existing records");
    pipeline.backfill({ groupId: group.id, modelId: group.modelId, runId: run.id });
  }
}

export async function runDaemon(options: RunOptions, registry: ConnectorRegistry = builtinConnectors(), logger: Logger = createLogger()): Promise<number> {
  try {
    await loadPlugins(options.plugins ?? [], registry);
  } catch (error) {
    logger.error({ err: error }, (error as Error).message);
    return EX_CONFIG;
  }
  const loaded = loadConfig(options.config, process.env, registry.extensions());
  for (const issue of loaded.issues) (issue.severity === "error" ? logger.error.bind(logger) : logger.warn.bind(logger))({ issue }, formatIssue(issue));
  if (!loaded.config) {
    logger.error({ config: options.config }, "invalid config; not starting");
    return EX_CONFIG;
  }
  const config = loaded.config;
  const domain = compileDomain(config);
  const listen = parseListen(options.http);
  const store = Store.open(options.state);
  const metrics = createMetrics({
    records: () => [...domain.models.keys()].map((m) => [m, store.countOf("records", m)] as [string, number]),
    members: () => [...domain.groups.keys()].map((g) => [g, store.countOf("members", g)] as [string, number]),
    outboxDepth: () => [...domain.destinations.keys()].map((d) => [d, store.outboxDepth(d)] as [string, number]),
  });

  const sources = createSources(config, registry, store, logger, {
    consumerLag: (topic, partition, lag) => metrics.kafkaConsumerLag.set({ topic, partition: String(partition) }, lag),
    replicationLagBytes: (app, bytes) => metrics.replicationLagBytes.set({ app }, bytes),
    snapshotProgress: (source, table, read, estimated) => {
      metrics.snapshotRowsRead.set({ source, table }, read);
      metrics.snapshotRowsEstimated.set({ source, table }, estimated);
    },
  });
  if (typeof sources === "string") {
    logger.error(sources);
    await store.close();
    return EX_CONFIG;
  }

  const destinations = createDestinations(config, registry, logger);
  if (typeof destinations === "string") {
    logger.error(destinations);
    await store.close();
    return EX_CONFIG;
  }
  const outboxBound = options.outboxBound ?? 100_000;
  let pipelinePaused = false;
  let outboxFull = false;
  const applyPause = () => {
    const paused = pipelinePaused || outboxFull;
    metrics.sourcesPaused.set(paused ? 1 : 0);
    for (const source of sources) {
      if (paused) source.pause();
      else source.resume();
    }
  };
  const checkOutbox = () => {
    const depths = destinations.map((d) => store.outboxDepth(d.destinationId));
    const full = outboxFull ? depths.some((n) => n >= outboxBound / 2) : depths.some((n) => n >= outboxBound);
    if (full !== outboxFull) {
      outboxFull = full;
      logger.warn({ outboxBound, depths }, full ? "outbox full: pausing sources" : "outbox drained: resuming sources");
      applyPause();
    }
  };
  const deliveries = destinations.map(
    (connector) =>
      new Delivery<OutboxEntry>(
        connector,
        store.outboxFor(connector.destinationId),
        {
          completed: (outcomes, batchSize) => {
            recordDelivered(metrics, connector.destinationId, outcomes, batchSize);
            if (outboxFull) checkOutbox();
          },
          failed: (error) => logger.error({ err: error, destination: connector.destinationId }, "delivery failed"),
        },
        { ...DEFAULT_DELIVERY_OPTIONS, ...options.delivery },
      ),
  );

  const changes$: Observable<Change> = merge(...sources.map((s) => s.changes()));
  const pipeline = new Pipeline(
    changes$,
    {
      applyChanges: (changes) => store.applyBatch(domain, changes, Date.now()),
      sweep: (now) => store.sweep(domain, now),
      nextBoundary: () => store.nextBoundaryInstant(),
      backfill: async (task: BackfillTask) => {
        const last = await store.backfillChunk(domain, task.modelId, task.groupId, task.after, Date.now());
        const run = store.getMeta<RunState>(`run:${task.runId}`);
        if (last === undefined) {
          if (run) await store.putMeta(`run:${task.runId}`, { ...run, state: "complete", completedAt: Date.now() });
          const group = domain.groups.get(task.groupId);
          if (group) await store.putMeta(`group:${group.id}`, group.fingerprint);
          logger.info({ run: task.runId, processed: run?.processed ?? 0 }, "backfill complete");
          return undefined;
        }
        if (run) await store.putMeta(`run:${task.runId}`, { ...run, processed: run.processed + store.recordIdsOf(task.modelId, task.after, 500).length });
        return { ...task, after: last };
      },
    },
    {
      committed: (batch) => {
        recordCommitted(metrics, batch);
        if (batch.positions.size > 0) for (const source of sources) void source.acknowledge(batch.positions);
        if ((batch.result?.exports ?? 0) > 0) {
          for (const delivery of deliveries) delivery.wake();
          checkOutbox();
        }
      },
      pressure: (paused) => {
        pipelinePaused = paused;
        logger.warn({ paused }, paused ? "backpressure: pausing sources" : "backpressure released: resuming sources");
        applyPause();
      },
      failed: (error) => logger.error({ err: error }, "pipeline failed"),
    },
    pipelineOptions(options.maxBatchSize ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize, options.maxBatchDelayMs ?? DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs),
  );

  let draining = false;
  let server: Server | undefined;
  try {
    server = await startHttpServer(listen, {
      registry: metrics.registry,
      notReady: () => {
        if (draining) return "draining";
        const down = sources.filter((s) => !s.ready()).map((s) => s.appId);
        if (down.length > 0) return `sources not connected: ${down.join(", ")}`;
        const unreachable = destinations.filter((d) => !d.ready()).map((d) => d.destinationId);
        return unreachable.length > 0 ? `destinations unreachable: ${unreachable.join(", ")}` : null;
      },
    });
  } catch (error) {
    logger.error({ err: error, http: options.http }, "cannot listen for HTTP");
    await store.close();
    return EX_SOFTWARE;
  }
  logger.info({ http: options.http, state: options.state, sources: sources.map((s) => s.appId) }, "grouparoo-stream running");

  const finished = pipeline.run();
  finished.catch(() => undefined); // handled below; keeps an early failure from being unhandled
  for (const delivery of deliveries) delivery.start();
  await startBackfills(domain, store, pipeline, logger);

  const drain = async (signal: string) => {
    if (draining) return;
    draining = true;
    logger.info({ signal }, "draining: not ready, stopping sources, committing the batch in flight");
    pipeline.drain();
    await Promise.all(sources.map((s) => s.stop()));
  };
  const onSignal = (signal: NodeJS.Signals) => void drain(signal);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  let code = 0;
  try {
    await finished;
  } catch (error) {
    logger.error({ err: error }, "pipeline stopped on an error");
    code = EX_SOFTWARE;
    draining = true;
    // The sources may still be connected and reading: stop them, but do not wait forever.
    await Promise.race([Promise.allSettled(sources.map((s) => s.stop())), new Promise((r) => setTimeout(r, 10_000))]);
  }
  // Flush the outbox as far as the drain timeout allows; what is left is delivered after a restart.
  await Promise.all(deliveries.map((d) => d.drain(options.drainTimeoutMs ?? 10_000)));
  await Promise.all(destinations.map((d) => d.stop().catch(() => undefined)));
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
  await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  await store.close();
  logger.info({ code }, "stopped");
  return code;
}

/** The backpressure marks follow the batch size, so a full batch can always form before the sources pause. */
export function pipelineOptions(maxBatchSize: number, maxBatchDelayMs: number): PipelineOptions {
  const { highWaterMark, lowWaterMark } = DEFAULT_PIPELINE_OPTIONS;
  return { ...DEFAULT_PIPELINE_OPTIONS, maxBatchSize, maxBatchDelayMs, highWaterMark: Math.max(highWaterMark, 4 * maxBatchSize), lowWaterMark: Math.max(lowWaterMark, maxBatchSize) };
}
