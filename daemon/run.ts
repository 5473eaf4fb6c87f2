// `grouparoo-stream run`: wires the daemon together. It loads and validates the config, opens the
// state, creates the connectors through the component registry, runs the pipeline (streams/) with its
// backpressure and Runs, delivers the outbox, serves HTTP, and on SIGTERM / SIGINT drains: /readyz
// turns 503, sources stop reading, the batch in flight commits and is acknowledged, and the process
// exits 0.
import type { Server } from "node:http";
import type { Logger } from "pino";
import { formatIssue } from "../core/config/issues.js";
import type { ComponentRegistry } from "../connectors/registry.js";
import type { DestinationConnector, SourceConnector } from "../connectors/types.js";
import { createMetrics, type Metrics } from "../metrics/registry.js";
import { Store, type OutboxEntry } from "../state/store.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery, type DeliveryOptions } from "../streams/delivery.js";
import { flowIntoState } from "../streams/flow.js";
import { DEFAULT_PIPELINE_OPTIONS, pipelineOptions } from "../streams/pipeline.js";
import { startBackfills } from "../streams/runs.js";
import { EX_CONFIG } from "./commands/validate.js";
import { loadConfigWithPlugins, type ValidationResult } from "./config/validate.js";
import { createDestinations, createSources, type CreatedDestination } from "./connectors.js";
import { parseListen, startHttpServer } from "./http.js";
import { createLogger } from "./logger.js";
import { recordCommitted, recordDelivered, sourceObserver } from "./observe.js";

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

function deliveries(created: readonly CreatedDestination[], store: Store, metrics: Metrics, logger: Logger, options: Partial<DeliveryOptions> | undefined, delivered: () => void): Delivery<OutboxEntry>[] {
  return created.map(
    ({ connector, tuning }) =>
      new Delivery<OutboxEntry>(
        connector,
        store.outboxFor(connector.destinationId),
        {
          completed: (outcomes, batchSize) => {
            recordDelivered(metrics, connector.destinationId, outcomes, batchSize);
            delivered();
          },
          failed: (error) => logger.error({ err: error, destination: connector.destinationId }, "delivery failed"),
        },
        { ...DEFAULT_DELIVERY_OPTIONS, ...options, ...tuning },
      ),
  );
}

export async function runDaemon(options: RunOptions, logger: Logger = createLogger()): Promise<number> {
  let loaded: ValidationResult & { registry: ComponentRegistry };
  try {
    loaded = await loadConfigWithPlugins(options.config, options.plugins ?? []);
  } catch (error) {
    logger.error({ err: error }, (error as Error).message);
    return EX_CONFIG;
  }
  const registry = loaded.registry;
  for (const issue of loaded.issues) (issue.severity === "error" ? logger.error.bind(logger) : logger.warn.bind(logger))({ issue }, formatIssue(issue));
  if (!loaded.config || !loaded.domain) {
    logger.error({ config: options.config }, "invalid config; not starting");
    return EX_CONFIG;
  }
  const { config, domain } = loaded;
  const listen = parseListen(options.http);
  const store = Store.open(options.state);
  const metrics = createMetrics({
    records: () => [...domain.models.keys()].map((m) => [m, store.countOf("records", m)] as [string, number]),
    members: () => [...domain.groups.keys()].map((g) => [g, store.countOf("members", g)] as [string, number]),
    outboxDepth: () => [...domain.destinations.keys()].map((d) => [d, store.outboxDepth(d)] as [string, number]),
  });

  let sources: SourceConnector[];
  let created: CreatedDestination[];
  try {
    sources = createSources(config, registry, store.allPositions(), logger, sourceObserver(metrics));
    created = createDestinations(config, registry, logger);
  } catch (error) {
    logger.error({ err: error }, (error as Error).message);
    await store.close();
    return EX_CONFIG;
  }
  const destinations: DestinationConnector[] = created.map((d) => d.connector);

  const marks = pipelineOptions(options.maxBatchSize ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize, options.maxBatchDelayMs ?? DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs);
  const outboxBound = options.outboxBound ?? 100_000;
  const outboxDepths = () => destinations.map((d) => store.outboxDepth(d.destinationId));
  const delivery = deliveries(created, store, metrics, logger, options.delivery, () => {
    if (flow.backpressure.outboxAtBound) flow.backpressure.outboxDepths(outboxDepths());
  });

  const flow = flowIntoState(
    sources,
    store,
    domain,
    {
      committed: (batch) => {
        recordCommitted(metrics, batch);
        if ((batch.result?.exports ?? 0) > 0) {
          for (const d of delivery) d.wake();
          flow.backpressure.outboxDepths(outboxDepths());
        }
      },
      failed: (error) => logger.error({ err: error }, "pipeline failed"),
      pressure: (reason, full, paused) => {
        if (reason === "outbox") logger.warn({ outboxBound, depths: outboxDepths() }, full ? "outbox full: pausing sources" : "outbox drained: resuming sources");
        else logger.warn({ paused: full }, full ? "backpressure: pausing sources" : "backpressure released: resuming sources");
        metrics.sourcesPaused.set(paused ? 1 : 0);
      },
      acknowledgeFailed: (source, error) => logger.warn({ err: error, app: source.appId }, "acknowledging positions failed"),
    },
    { pipeline: marks, outboxBound },
  );
  const { pipeline } = flow;

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

  const finished = flow.done;
  finished.catch(() => undefined); // handled below; keeps an early failure from being unhandled
  for (const d of delivery) d.start();
  await startBackfills(domain, store, (work) => pipeline.schedule(work), logger);

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
  await Promise.all(delivery.map((d) => d.drain(options.drainTimeoutMs ?? 10_000)));
  await Promise.all(destinations.map((d) => d.stop().catch(() => undefined)));
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
  await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  await store.close();
  logger.info({ code }, "stopped");
  return code;
}
