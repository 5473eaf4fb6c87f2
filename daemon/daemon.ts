// The daemon at run time: the state, the metrics and the HTTP listener live as long as the process; the
// rest (connectors, pipeline, deliveries, Runs) is one generation built from one config. A reload
// validates the new config, keeps the running generation when it is invalid, and otherwise drains it
// (the batch in flight commits and is acknowledged) and starts a generation of the new config, whose
// Runs take the state where the new config wants it: a restart and a reload do the same.
import { createHash } from "node:crypto";
import { lstatSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import { createServer } from "node:net";
import type { Logger } from "pino";
import { formatIssue } from "../core/config/issues.js";
import type { Config } from "../core/config/types.js";
import { definitionsOf, operationalOptionsOf, removedThenReadWhole, requestedRunObsolete, type Definitions, type RunSpec } from "../core/definitions.js";
import type { Domain } from "../core/domain.js";
import type { ComponentRegistry } from "../connectors/registry.js";
import type { DestinationConnector, LiveProblem, SourceConnector } from "../connectors/types.js";
import { createMetrics, type Metrics } from "../metrics/registry.js";
import { StateOpenError } from "../state/open.js";
import { STATE_FORMAT, Store, type OutboxEntry } from "../state/store.js";
import { OutboxWatch } from "../streams/backpressure.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery, type DeliveryOptions, type InFlight } from "../streams/delivery.js";
import { flowIntoState, type Flow } from "../streams/flow.js";
import { DEFAULT_PIPELINE_OPTIONS, pipelineOptions } from "../streams/pipeline.js";
import { Runs, rereadsUnderWay } from "../streams/runs.js";
import { EX_CONFIG, EX_SOFTWARE, EX_USAGE, stateExitCode } from "./exit-codes.js";
import { loadConfigWithPlugins, type ValidationResult } from "./config/validate.js";
import { createDestinations, createSources, needsReread, type CreatedDestination } from "./connectors.js";
import { HeldSource } from "./held-source.js";
import { summarize } from "./commands/validate.js";
import { checkLive, formatLiveProblem, idleWarning } from "./live.js";
import { DeliveryLog, MissingColumnsLog } from "./problems.js";
import { readPackageInfo } from "./package-info.js";
import { parseListen } from "./http.js";
import { RELOADING, STARTING, STOPPING, unavailable } from "./api/errors.js";
import { ApiKeys, apiMode } from "./api/keys.js";
import type { ApiBackend } from "./api/server.js";
import { startApiThread, type ApiListener } from "./api/thread.js";
import { daemonStatus, type DaemonStatus } from "./api/status.js";
import type { Operation } from "../streams/pipeline.js";
import { destinationReasons, sourceReasons } from "./readiness.js";
import { forgetSourceReports, recordCommitted, recordResult, recordDelivered, runCounts, runningProgress, sourceObserver, zeroCounters } from "./observe.js";
import type { SystemdNotifier } from "./systemd.js";

/** Longest a reload waits for the live check of the new config. */
const RELOAD_LIVE_CHECK_MS = 15_000;
/** How much longer systemd is to wait for start-up after each chunk of a state upgrade (a chunk takes tens of ms). */
const UPGRADE_STEP_TIMEOUT_MS = 60_000;

/**
 * Upgrades a state of an older layout before anything reads it, a chunk at a time: each chunk extends
 * systemd's start timeout and shows the progress in its status, and the log has a line every 5 s.
 */
async function upgradeState(store: Store, state: string, logger: Logger, systemd: SystemdNotifier | undefined, progress: (text: string) => void): Promise<void> {
  const total = store.upgradeKeyCount();
  logger.info({ state, layout: STATE_FORMAT, keysToScan: total }, "upgrading the state to this version's layout (a stop part-way resumes at the next start)");
  const status = (scanned: number) => `starting: upgrading the state's layout (${scanned.toLocaleString("en")} of ${total.toLocaleString("en")} keys read)`;
  systemd?.extendTimeout(UPGRADE_STEP_TIMEOUT_MS, status(0));
  progress(status(0));
  let logged = performance.now();
  await store.upgrade(({ rewritten, scanned }) => {
    systemd?.extendTimeout(UPGRADE_STEP_TIMEOUT_MS, status(scanned));
    progress(status(scanned));
    if (performance.now() - logged >= 5_000) {
      logged = performance.now();
      logger.info({ state, keysScanned: scanned, keysToScan: total, keysRewritten: rewritten }, "upgrading the state");
    }
  });
  const done = store.upgraded;
  if (done) logger.info({ state, fromLayout: done.from, layout: STATE_FORMAT, keysRewritten: done.keys, ms: done.ms }, "state upgraded to this version's layout");
  // What is left of the start (the listener, the sources) gets a timeout of its own again.
  systemd?.extendTimeout(UPGRADE_STEP_TIMEOUT_MS, "starting: the state is upgraded");
}

/** Why `listen` cannot be bound (EADDRINUSE, EACCES, ...), or undefined once a probe bound and closed it. */
function addressInUse(listen: { host: string; port: number }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

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
  /** Reload when a config file changes (as on SIGHUP). */
  watchConfig?: boolean;
  /** Serve the API and the status page without keys when the config has none (the CLI allows it on loopback only). */
  apiInsecure?: boolean;
  /** /metrics needs a key with read on the metrics topic. */
  metricsAuth?: boolean;
  /** The API thread's nice value (Linux; 0, the default, keeps the process's priority). */
  apiNice?: number;
}

export { EX_SOFTWARE };

/**
 * What the listener asks of the daemon while it starts: the daemon's own answers once it exists
 * (`daemon()`), before that 503 "starting" (and /readyz `not ready: ` with what the start is doing,
 * an upgrade of the state's layout with its progress, say); /metrics answers from the start.
 */
function startingBackend(store: Store, daemon: () => ApiBackend | undefined, metrics: Metrics, phase: () => string): ApiBackend {
  const starting = () => Promise.reject(unavailable(STARTING));
  const noKeys = new ApiKeys([]);
  return {
    store,
    keys: () => daemon()?.keys() ?? noKeys,
    domain: () => daemon()?.domain(),
    notServing: () => daemon()?.notServing() ?? STARTING,
    notReady: () => {
      const running = daemon();
      return running ? running.notReady() : phase();
    },
    status: () => daemon()?.status() ?? starting(),
    metrics: async () => daemon()?.metrics() ?? { contentType: metrics.registry.contentType, text: await metrics.registry.metrics() },
    perform: (operation) => daemon()?.perform(operation) ?? starting(),
    requestRuns: (requests, reason) => daemon()?.requestRuns(requests, reason) ?? starting(),
    stopRun: (id) => daemon()?.stopRun(id) ?? starting(),
  };
}

/** The listener's thread died while the state was upgraded (logged where it died). */
class ListenerDiedError extends Error {}

/** What a reload did: applied a new config, refused an invalid one, found the running one, or came during a drain. */
export type ReloadResult = "applied" | "invalid" | "unchanged" | "ignored";

/**
 * A short digest of the loaded config objects (sha256, 12 hex digits): it tells two configs apart in
 * logs, and a reload whose config has the running one's digest applies nothing.
 */
export function configDigest(config: Config): string {
  // Without each object's own `origin` (where it was read from): only that, not a mapping's or an
  // option's key that happens to be named "origin", since a reload of the same digest applies nothing.
  const objects = Object.fromEntries(
    Object.entries(config).map(([name, value]) => [name, Array.isArray(value) ? value.map(({ origin: _origin, ...object }: { origin?: unknown }) => object) : value]),
  );
  return createHash("sha256").update(JSON.stringify(objects)).digest("hex").slice(0, 12);
}

/** A Run asked for by hand (grouparoo-stream rebuild), waiting in the state for the daemon. */
export interface RunRequest {
  spec: RunSpec;
  target: string;
  reason: string;
  at: number;
}

/** Everything built from one config. */
interface Generation {
  config: Config;
  /** configDigest(config), taken before the API keys' secrets were dropped from it. */
  digest: string;
  domain: Domain;
  /** The config's API keys, hashed (the config itself no longer holds their secrets). */
  keys: ApiKeys;
  sources: SourceConnector[];
  bySource: ReadonlyMap<string, SourceConnector>;
  destinations: DestinationConnector[];
  deliveries: Delivery<OutboxEntry>[];
  /** Each destination's outbox depth, by id. */
  outboxDepths: () => Record<string, number>;
  /** Hands the backpressure the outbox depths (streams/backpressure.ts). */
  outboxWatch: OutboxWatch;
  /** The components the config's objects are of. */
  registry: ComponentRegistry;
  flow: Flow;
  runs: Runs;
  requests: NodeJS.Timeout;
  /** Its sources' reports reach the metrics until it stops (sourceObserver). */
  observing: { active: boolean };
}

export class Daemon {
  private generation: Generation | undefined;
  private server: ApiListener | undefined;
  /** The listener while its thread boots (the sources do not wait for it); stopping waits for it, to close it. */
  private listening: Promise<ApiListener> | undefined;
  /** A config generation has started once (before: starting; between two: reloading). */
  private served = false;
  private readonly startedAt = Date.now();
  /** Per destination, what its delivery loops have in flight, shared across reloads (streams/delivery.ts, InFlight). */
  private readonly inFlight = new Map<string, InFlight>();
  private watcher: FSWatcher | undefined;
  private draining = false;
  private takingRequests: Promise<void> | undefined;
  private reloading: Promise<unknown> = Promise.resolve();
  /** A reload waiting for the one under way: the requests made meanwhile join it. */
  private queuedReload: Promise<ReloadResult> | undefined;
  private settle: (code: number) => void = () => undefined;
  /** The keys of the generation last stopped, while a reload builds the next. */
  private lastKeys: ApiKeys | undefined;
  /** The domain of the generation last stopped: its gauges go on while a reload builds the next. */
  private lastDomain: Domain | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private lastStatus: string | undefined;
  /** Resolves with the exit code once the daemon stopped. */
  readonly finished: Promise<number>;

  private constructor(
    private readonly options: RunOptions,
    private readonly logger: Logger,
    private readonly store: Store,
    private readonly metrics: Metrics,
    private readonly systemd: SystemdNotifier | undefined,
  ) {
    this.finished = new Promise((resolve) => (this.settle = resolve));
  }

  /** Validates the config, opens the state, starts everything; an exit code when it cannot start. */
  static async start(options: RunOptions, logger: Logger, systemd?: SystemdNotifier): Promise<Daemon | number> {
    systemd?.status("starting: loading the config");
    const loaded = await Daemon.load(options, logger);
    if (!loaded.config || !loaded.domain || !loaded.registry) {
      logger.error({ config: options.config }, "invalid config; not starting");
      return EX_CONFIG;
    }
    let listen: { host: string; port: number };
    try {
      listen = parseListen(options.http);
    } catch (error) {
      logger.error({ http: options.http }, (error as Error).message);
      return EX_USAGE;
    }
    if (options.metricsAuth && loaded.config.apiKeys.length === 0) {
      logger.error({ config: options.config }, "--metrics-auth puts /metrics behind a key, but the config has no apiKey objects; not starting");
      return EX_CONFIG;
    }
    const idle = idleWarning(loaded.config);
    if (idle) logger.warn({ config: options.config }, idle);
    let store: Store;
    try {
      // One daemon per state: the exclusive lock is taken before LMDB is opened (state/open.ts).
      store = Store.open(options.state, { lock: true, deferUpgrade: true });
    } catch (error) {
      if (!(error instanceof StateOpenError)) throw error;
      logger.error({ state: options.state, ...(error.holderPid === undefined ? {} : { holderPid: error.holderPid }) }, error.message);
      return stateExitCode(error);
    }
    // Every source's table or query and every destination's table, against the live databases: a
    // missing one is a config error (exit 78), named; a database that cannot be reached is not (the
    // connectors retry it once running).
    const { config: startConfig, registry: startRegistry } = loaded;
    const checkLiveSystems = async (): Promise<LiveProblem[]> => {
      systemd?.status("starting: checking the sources and destinations against the live systems");
      const found = await checkLive(startConfig, startRegistry);
      for (const problem of found) {
        if (problem.permanent) logger.error({ [problem.objectClass]: problem.id }, `${formatLiveProblem(problem)}; not starting`);
        else logger.warn({ [problem.objectClass]: problem.id }, `${formatLiveProblem(problem)}; starting anyway (it is retried)`);
      }
      return found;
    };
    const current = () => daemon?.generation;
    const metrics = createMetrics({
      records: () => [...(daemon?.metricsDomain?.models.keys() ?? [])].map((m) => [m, store.countOf("records", m)] as [string, number]),
      members: () => [...(daemon?.metricsDomain?.groups.keys() ?? [])].map((g) => [g, store.countOf("members", g)] as [string, number]),
      outboxDepth: () => store.namedOutboxDepths([...(daemon?.metricsDomain?.destinations.keys() ?? [])]),
      runs: () => (daemon?.metricsDomain ? runCounts([store]) : []),
      runProgress: () => runningProgress(current()?.runs.pending() ?? []),
    }, { version: readPackageInfo().version, node: process.version, layout: STATE_FORMAT });
    // Until the daemon exists, the listener answers 503 "starting" and /readyz says what the start is doing.
    let daemon: Daemon | undefined = undefined;
    let phase = "starting";
    let listenerDied = false;
    const startThread = (stateLater: boolean) =>
      startApiThread(startingBackend(store, () => daemon?.backend(), metrics, () => phase), { listen, apiInsecure: options.apiInsecure ?? false, metricsAuth: options.metricsAuth ?? false, nice: options.apiNice ?? 0, logger }, STARTING, (error) => {
        logger.error({ err: error }, "the HTTP listener's thread died: stopping (a supervisor restarts the daemon)");
        listenerDied = true;
        void daemon?.stop(EX_SOFTWARE);
      }, stateLater);
    let thread: Promise<ApiListener> | undefined;
    let live: LiveProblem[] | undefined;
    if (store.needsUpgrade) {
      // A start that is refused (a config the live systems do not match, an address in use) leaves the
      // state as it was, in the layout the previous version reads: those checks come first.
      live = await checkLiveSystems();
      const inUse = live.some((p) => p.permanent) ? undefined : await addressInUse(listen);
      if (inUse) logger.error({ http: options.http }, `cannot listen on ${options.http}: ${inUse}; not starting (the state was not upgraded)`);
      if (inUse || live.some((p) => p.permanent)) {
        await store.close();
        return inUse ? EX_SOFTWARE : EX_CONFIG;
      }
      // An upgrade takes a while on a large state: the listener answers before it begins (/healthz 200,
      // /readyz 503 with its progress, /metrics), so that probes and scrapes do not take the daemon for
      // dead meanwhile. Its thread opens the state once the upgrade is done.
      thread = startThread(true);
      try {
        await thread;
      } catch (error) {
        logger.error({ http: options.http }, `cannot listen on ${options.http}: ${(error as Error).message}; not starting (the state was not upgraded)`);
        await store.close();
        return EX_SOFTWARE;
      }
      try {
        await upgradeState(store, options.state, logger, systemd, (text) => {
          // A listener that died stops the upgrade between chunks (the next start resumes it): no probe answers now.
          if (listenerDied) throw new ListenerDiedError();
          phase = text;
        });
      } catch (error) {
        await thread.then((listener) => listener.close(), () => undefined);
        await store.close();
        if (error instanceof ListenerDiedError) return EX_SOFTWARE;
        throw error;
      }
      // Died after the last chunk: the start stops here all the same (the state stays upgraded).
      if (listenerDied) {
        await thread.then((listener) => listener.close(), () => undefined);
        await store.close();
        return EX_SOFTWARE;
      }
      phase = "starting";
      (await thread).stateReady();
    }
    // The listener's thread boots (about half a second: its own isolate and its bundle) while the live checks
    // run and the sources start, not before them.
    thread ??= startThread(false);
    thread.catch(() => undefined);
    const closeThread = () => (thread as Promise<ApiListener>).then((listener) => listener.close(), () => undefined);
    live ??= await checkLiveSystems();
    if (live.some((p) => p.permanent)) {
      await closeThread();
      await store.close();
      return EX_CONFIG;
    }
    // The listener's thread died before there was a daemon to stop (during the live checks): no start.
    if (listenerDied) {
      await closeThread();
      await store.close();
      return EX_SOFTWARE;
    }
    daemon = new Daemon(options, logger, store, metrics, systemd);
    // The sources start without waiting for the listener's thread to boot (on an operator's restart
    // path, and a backlog's catch-up is timed from the start); the daemon is ready only once both are.
    // The listener is attached as soon as it listens, with the generation running then (later ones
    // reach it through startGeneration and stopGeneration).
    const running = daemon;
    running.listening = thread.then((listener) => {
      running.server = listener;
      const current = running.generation;
      if (current) listener.generation({ config: current.config, keys: current.keys });
      else if (running.served) listener.generation(null, running.notServing());
      return listener;
    });
    running.listening.catch(() => undefined);
    const failed = await daemon.startGeneration(loaded.config, loaded.domain, loaded.registry).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    // Stopped meanwhile (the pipeline failed at once, or the listener's thread died): it ends through
    // `finished`, with the code it stopped with.
    if (daemon.draining) return daemon;
    if (failed) {
      logger.error({ err: failed }, failed.message);
      await daemon.stopGeneration();
      await closeThread();
      await store.close();
      return EX_CONFIG;
    }
    try {
      await running.listening;
    } catch (error) {
      if (daemon.draining) return daemon;
      // The sources had started: they stop (the batch in flight commits and is acknowledged) first.
      logger.error({ err: error, http: options.http }, "cannot listen for HTTP");
      await daemon.stopGeneration();
      await store.close();
      return EX_SOFTWARE;
    }
    if (daemon.draining) return daemon;
    if (options.watchConfig) daemon.watchConfig();
    const config = loaded.config;
    logger.info(
      {
        version: readPackageInfo().version,
        node: process.version,
        pid: process.pid,
        state: options.state,
        config: options.config,
        configDigest: daemon.generation?.digest,
        objects: summarize(config) || "none",
        http: options.http,
        sources: daemon.generation?.sources.map((s) => s.appId),
        maxBatchSize: options.maxBatchSize ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize,
      },
      "grouparoo-stream running",
    );
    daemon.logApiMode();
    daemon.announceReady();
    return daemon;
  }

  /** Says how the API is served with the running config's keys (at start, and after a reload changes it). */
  private logApiMode(previous?: "keys" | "insecure" | "off", previousKeys?: ApiKeys): void {
    const keys = this.generation?.keys.size ?? 0;
    const mode = apiMode(keys, this.options.apiInsecure ?? false);
    if (mode === previous) {
      const ids = (k: ApiKeys | undefined) => (k?.list() ?? []).map((key) => key.id);
      const before = ids(previousKeys);
      const after = ids(this.generation?.keys);
      if (mode === "keys" && JSON.stringify(before) !== JSON.stringify(after)) {
        this.logger.info({ keys: after, added: after.filter((id) => !before.includes(id)), removed: before.filter((id) => !after.includes(id)) }, `API keys changed: ${keys} API key${keys === 1 ? "" : "s"}`);
      }
      return;
    }
    const where = `http://${this.options.http}`;
    if (mode === "keys") {
      this.logger.info({ http: this.options.http, keys: this.generation?.keys.list().map((k) => k.id), metricsAuth: this.options.metricsAuth ?? false, apiNice: this.options.apiNice ?? 0 }, `API on at ${where}/api/v1 and status page at ${where}/: ${keys} API key${keys === 1 ? "" : "s"}`);
      if (this.options.apiInsecure) this.logger.warn("--api-insecure is ignored: the config has API keys, which every API request needs");
    } else if (mode === "insecure") {
      this.logger.warn({ http: this.options.http }, `API on at ${where}/api/v1 WITHOUT keys (--api-insecure, loopback only): anyone who can reach it may read and write`);
    } else {
      this.logger.info({ http: this.options.http }, "API off: the config has no apiKey objects (/api/v1 and / answer 404; --api-insecure serves them without keys on loopback)");
    }
    if (this.options.metricsAuth && keys === 0) this.logger.warn("--metrics-auth: the config has no apiKey objects, so /metrics answers 401 to every scrape");
  }

  /** What the HTTP listener reads and asks of the daemon. */
  private backend(): ApiBackend {
    const generation = () => {
      const current = this.generation;
      if (!current) throw unavailable(this.notServing());
      return current;
    };
    const noKeys = new ApiKeys([]);
    return {
      store: this.store,
      keys: () => this.generation?.keys ?? this.lastKeys ?? noKeys,
      domain: () => this.generation?.domain,
      notServing: () => this.notServing(),
      notReady: () => this.notReady(),
      status: () => this.status(),
      metrics: async () => ({ contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() }),
      perform: async <T>(operation: Operation<T>) => {
        const current = generation();
        const value = await current.flow.pipeline.perform(operation);
        // What an operation queued goes out now, not at the next batch.
        for (const d of current.deliveries) d.wake();
        current.outboxWatch.look();
        return value;
      },
      requestRuns: async (requests, reason) => {
        const current = generation();
        const runs = [];
        for (const { spec, target } of requests) runs.push(await current.runs.request(spec, target, reason));
        return runs;
      },
      stopRun: (id) => generation().runs.stopRun(id),
    };
  }

  private notServing(): string {
    return this.draining ? STOPPING : this.served ? RELOADING : STARTING;
  }

  /** The running daemon's status (the API, the page, `status --url`). */
  async status(): Promise<DaemonStatus> {
    const generation = this.generation;
    if (!generation) throw unavailable(this.notServing());
    const connectorSources = new Map<SourceConnector, string[]>();
    for (const [sourceId, connector] of generation.bySource) connectorSources.set(connector, [...(connectorSources.get(connector) ?? []), sourceId]);
    return daemonStatus({
      store: this.store,
      metrics: this.metrics,
      version: readPackageInfo().version,
      startedAt: this.startedAt,
      configDigest: generation.digest,
      notReady: this.notReady(),
      config: generation.config,
      domain: generation.domain,
      sources: generation.sources,
      sourceIdsOf: (connector) => (connectorSources.get(connector) ?? []).sort(),
      destinations: generation.destinations,
      streams: generation.flow.streams(),
      paused: generation.flow.backpressure.paused,
      pendingRuns: generation.runs.pending(),
    });
  }

  private static async load(options: RunOptions, logger: Logger): Promise<ValidationResult & { registry?: ComponentRegistry }> {
    try {
      const loaded = await loadConfigWithPlugins(options.config, options.plugins ?? []);
      for (const issue of loaded.issues) (issue.severity === "error" ? logger.error.bind(logger) : logger.warn.bind(logger))({ issue }, formatIssue(issue));
      return loaded;
    } catch (error) {
      logger.error({ err: error }, (error as Error).message);
      return { issues: [] };
    }
  }

  /**
   * READY=1 to systemd once started (not once the sources connect: a database that is down must not
   * fail the start; /readyz tells), then STATUS= whenever /readyz's answer changes.
   */
  private announceReady(): void {
    const generation = this.generation;
    this.systemd?.ready(`running: ${generation?.sources.length ?? 0} source connectors, ${generation?.destinations.length ?? 0} destinations`);
    if (!this.systemd?.enabled || this.statusTimer) return;
    this.statusTimer = setInterval(() => {
      const reason = this.notReady();
      const status = reason === null ? "ready" : `not ready: ${reason}`;
      if (status !== this.lastStatus) this.systemd?.status(status);
      this.lastStatus = status;
    }, 5000);
    this.statusTimer.unref();
  }

  /** null when ready, else why not. */
  notReady(): string | null {
    const generation = this.generation;
    if (this.draining) return "draining";
    if (!generation) return this.served ? "reloading" : "starting";
    const reasons: string[] = [];
    // A permanent problem names its app and why; the others keep running (and stay ready).
    const held = { is: (s: unknown) => s instanceof HeldSource && s.held, reason: "sources waiting for the Runs removing what they read" };
    reasons.push(...sourceReasons(generation.sources, held), ...destinationReasons(generation.destinations));
    return reasons.length > 0 ? reasons.join("; ") : null;
  }

  /**
   * Everything of one config: connectors, pipeline, deliveries, and the Runs its definitions need.
   * `kept`: the digest and keys of a generation that ran this config before (its config no longer
   * holds the keys' secrets), when a reload that could not start restarts it.
   */
  private async startGeneration(config: Config, domain: Domain, registry: ComponentRegistry, kept?: { digest: string; keys: ApiKeys }): Promise<void> {
    const { store, metrics, logger, options } = this;
    // The counters the alerts watch start at 0 for this config's sources and destinations.
    zeroCounters(metrics, config);
    const positions = store.allPositions();
    const observing = { active: true };
    const createdSources = createSources(config, registry, positions, logger, sourceObserver(metrics, () => observing.active), {
      rereading: rereadsUnderWay(store),
      // A connector that finds its system changed under it (a captured table made again) asks for a re-read.
      requestReread: async (sourceIds, reason) => {
        const runs = self.generation?.runs;
        if (!runs) throw new Error("the daemon is not running its Runs (starting, reloading or stopping)");
        for (const sourceId of sourceIds) {
          const modelId = config.sources.find((s) => s.id === sourceId)?.modelId;
          if (modelId !== undefined) await runs.request({ kind: "reread", sourceId, modelId }, `source ${sourceId}`, reason);
        }
      },
    });
    const created = createDestinations(config, registry, logger);
    const destinations = created.map((d) => d.connector);
    const marks = pipelineOptions(options.maxBatchSize ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize, options.maxBatchDelayMs ?? DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs);
    const outboxBound = options.outboxBound ?? 100_000;
    const namedDepths = () => Object.fromEntries(store.namedOutboxDepths(destinations.map((d) => d.destinationId)));
    // The generation being built, for the callbacks that run once it is.
    const self: { generation?: Generation } = {};
    const watch = new OutboxWatch(store, destinations.map((d) => d.destinationId), outboxBound, () => self.generation?.flow.backpressure);
    const deliveries = this.deliveries(created, () => watch.delivered());
    const operational = operationalOptionsOf(registry);
    const runs = new Runs({
      store,
      domain,
      operational,
      schedule: (work) => self.generation?.flow.pipeline.schedule(work),
      connectorOf: (sourceId) => bySource.get(sourceId),
      logger,
      // The depths as they are now (a Run's chunks plan exports without a batch of changes to report them).
      exportsHeld: () => self.generation?.flow.backpressure.outboxHeld(watch.depths()) ?? false,
      events: {
        progressed: (run, items) => {
          metrics.runItems.inc({ kind: run.kind }, items);
          logger.debug({ run: run.id, kind: run.kind, target: run.target, items, processed: run.processed, total: run.total }, "run chunk committed");
        },
        applied: (_run, result) => recordResult(metrics, result),
      },
    });
    // What this config changes is marked unsettled before its sources read a change under it.
    const definitions = definitionsOf(config, domain, registry);
    const rereadNeeded = (sourceId: string) => needsReread(config, registry, positions, sourceId);
    await runs.prepare(definitions, rereadNeeded);
    // A source its connector reads whole anyway (a new slot: moved to another app, say) whose removal
    // Runs (its old rows and records, its properties' values) are planned starts reading once they are
    // done: read before, its rows would be removed with the old ones. So does one whose rows a removal
    // drops as another model's (a model renamed, a source moved to another model), read again or not:
    // streamed before, its rows would be dropped from under the records they reached, and read again.
    const holding = new Set(removedThenReadWhole(runs.plan(definitions, rereadNeeded, store.isEmpty()), definitions, rereadNeeded));
    const removalsDone = holding.size === 0 ? undefined : runs.removalsDone();
    const heldConnectors = new Map<SourceConnector, SourceConnector>();
    for (const [sourceId, connector] of createdSources.bySource) {
      if (!removalsDone || !holding.has(sourceId) || heldConnectors.has(connector)) continue;
      const ids = [...createdSources.bySource].filter(([, c]) => c === connector).map(([id]) => id);
      heldConnectors.set(connector, new HeldSource(connector, removalsDone, ids));
      logger.info({ app: connector.appId, sources: ids, removed: ids.filter((id) => holding.has(id)) }, "source held until the Runs removing what it reads whole are done");
    }
    const sources = createdSources.connectors.map((c) => heldConnectors.get(c) ?? c);
    const bySource = new Map([...createdSources.bySource].map(([id, c]) => [id, heldConnectors.get(c) ?? c]));
    for (const held of heldConnectors.values()) {
      void removalsDone?.then(() => logger.info({ app: held.appId }, "source reading: the Runs removing what it reads are done"));
    }
    const missingColumns = new MissingColumnsLog(logger, domain);
    const flow = flowIntoState(
      sources,
      store,
      domain,
      {
        committed: (batch) => {
          recordCommitted(metrics, batch);
          missingColumns.saw(batch.result);
          if (batch.kind === "changes") logger.debug({ changes: batch.changes, seconds: batch.seconds, positions: Object.fromEntries(batch.positions) }, "batch committed; positions acknowledged to their sources");
          else if (batch.kind === "sweep") logger.debug({ seconds: batch.seconds }, "time-index sweep committed");
          runs.committed(batch);
          if ((batch.result?.deadLetters ?? 0) > 0) this.logDeadLetters(batch.result?.deadLetters ?? 0);
          const repairs = batch.result?.repairs ?? [];
          if (repairs.length > 0) {
            for (const r of repairs) metrics.aggregateRepairs.inc({ property: r.propertyId });
            logger.warn({ repairs: repairs.length, first: repairs.slice(0, 3) }, "aggregates rebuilt from their rows (another definition built them, or they were inconsistent)");
          }
          if ((batch.result?.exports ?? 0) > 0) for (const d of deliveries) d.wake();
          // At the bound, every commit looks again: a batch may have shrunk the outbox by replacing or
          // dropping exports without queuing any, and the sources wait for it to go below half.
          if ((batch.result?.exports ?? 0) > 0 || flow.backpressure.outboxAtBound) watch.look();
        },
        failed: (error) => logger.error({ err: error }, "pipeline failed"),
        pressure: (reason, full, paused) => {
          if (reason === "outbox") {
            if (full) logger.warn({ outboxBound, depths: namedDepths() }, "outbox full: pausing sources");
            else if (self.generation === this.generation && !this.draining) logger.info({ outboxBound, depths: namedDepths() }, "outbox drained: resuming sources");
          }
          // While a drain or reload stops the sources, nothing resumes them: say nothing of resuming.
          else if (full) logger.warn({ paused }, "backpressure: pausing sources");
          else if (self.generation === this.generation && !this.draining) logger.info({ paused }, paused ? "backpressure released (the outbox still holds the sources)" : "backpressure released: resuming sources");
          metrics.sourcesPaused.set(paused ? 1 : 0);
        },
        acknowledgeFailed: (source, error) => logger.warn({ err: error, app: source.appId }, "acknowledging positions failed"),
      },
      { pipeline: marks, outboxBound },
    );
    // The keys' secrets leave the config here: the daemon keeps their digests only.
    const digest = kept?.digest ?? configDigest(config);
    const keys = kept?.keys ?? new ApiKeys(config.apiKeys.map((k) => ({ ...k })));
    for (const key of config.apiKeys) (key as { apiKey: string }).apiKey = "[redacted]";
    const generation: Generation = { config, digest, domain, keys, sources, bySource, destinations, deliveries, outboxDepths: namedDepths, outboxWatch: watch, flow, runs, registry, requests: setInterval(() => void this.takeRequests(), 1000), observing };
    generation.requests.unref();
    self.generation = generation;
    this.generation = generation;
    this.served = true;
    this.server?.generation({ config, keys });
    const started = generation;
    flow.done.then(
      () => {
        // The sources completed on their own (not a drain or a reload): nothing is left to do.
        if (this.generation === started && !this.draining) void this.stop(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "pipeline stopped on an error");
        if (this.generation === started) void this.stop(EX_SOFTWARE);
      },
    );
    for (const d of deliveries) d.start();
    // A generation (a start, a reload) begins with its sources reading: they pause at once if an outbox
    // is still at its bound, and the gauge says which (a reload while paused left it at 1).
    watch.look();
    metrics.sourcesPaused.set(flow.backpressure.paused ? 1 : 0);
    await runs.start(definitions, rereadNeeded, store.isEmpty());
    await this.takeRequests();
  }

  private deliveries(created: readonly CreatedDestination[], delivered: () => void): Delivery<OutboxEntry>[] {
    return created.map(({ connector, tuning }) => {
      // Every failure has a log line: retries summed per destination (at most one line per interval,
      // with counts), each dead letter with its reason.
      const log = new DeliveryLog(this.logger.child({ destination: connector.destinationId }));
      const id = connector.destinationId;
      const inFlight = this.inFlight.get(id) ?? { seqs: new Set<number>(), records: new Set<string>() };
      this.inFlight.set(id, inFlight);
      return new Delivery<OutboxEntry>(
        connector,
        this.store.outboxFor(connector.destinationId),
        {
          completed: (outcomes, batchSize) => {
            recordDelivered(this.metrics, connector.destinationId, outcomes, batchSize);
            log.delivered(outcomes, batchSize);
            delivered();
          },
          failed: (error) => {
            this.logger.error({ err: error, destination: connector.destinationId }, "delivery failed");
            // A state that refuses writes stays so until a restart: stop, as when the pipeline fails.
            if (this.store.writesRefused && !this.draining) void this.stop(EX_SOFTWARE);
          },
        },
        { ...DEFAULT_DELIVERY_OPTIONS, ...this.options.delivery, ...tuning },
        inFlight,
      );
    });
  }

  /** Each change or message a batch set aside, with its source, position and reason (the first 100 of a batch). */
  private logDeadLetters(count: number): void {
    const shown = Math.min(count, 100);
    // The batch's letters are the newest of its sources (delivery may have added export letters since).
    const letters = this.store.recentDeadLetters(shown + 1000).flatMap((l) => (l.kind === "export" ? [] : [l])).slice(-shown);
    for (const letter of letters) {
      this.logger.error(
        { source: letter.sourceId, kind: letter.kind, seq: letter.seq, stream: letter.change.position.stream, position: letter.change.position.position, reason: letter.reason },
        `${letter.kind} set aside as a dead letter (grouparoo-stream dead-letters lists it)`,
      );
    }
    if (count > shown) this.logger.error({ count, logged: shown }, "more changes set aside as dead letters in this batch (grouparoo-stream dead-letters lists them)");
  }

  /** Runs asked for by hand (meta entries request:<at>), queued in the order they came. */
  private async takeRequests(): Promise<void> {
    const generation = this.generation;
    if (!generation || this.draining) return;
    // One at a time (the timer and a generation's start could otherwise queue a request twice).
    if (this.takingRequests) return this.takingRequests;
    this.takingRequests = this.takeRequestsOf(generation).finally(() => (this.takingRequests = undefined));
    return this.takingRequests;
  }

  private async takeRequestsOf(generation: Generation): Promise<void> {
    let definitions: Definitions | undefined;
    for (const request of this.store.metaWithPrefix<RunRequest>("request:")) {
      const key = `request:${request.at}`;
      // `rebuild` checked it against the config it was given, which may not be this one.
      const obsolete = requestedRunObsolete(request.spec, (definitions ??= definitionsOf(generation.config, generation.domain, generation.registry)));
      if (obsolete !== undefined) {
        await this.store.transact((tx) => tx.deleteMeta(key));
        this.logger.warn({ kind: request.spec.kind, target: request.target, reason: obsolete }, "a Run asked for by hand is not queued: it does not apply to the running config");
        continue;
      }
      // The request leaves in the transaction that stores its Run: a crash in between loses neither.
      await generation.runs.request(request.spec, request.target, request.reason, key);
    }
  }

  /**
   * Stops a generation: its Runs stop at their next chunk (they resume in the next generation), the
   * sources stop reading, the batch in flight commits and is acknowledged, and delivery stops; with
   * `drainMs`, the outbox is delivered for up to that long first.
   */
  private async stopGeneration(drainMs?: number): Promise<void> {
    const generation = this.generation;
    if (!generation) return;
    // No longer current: its pipeline ending is not the daemon ending. Its keys still answer meanwhile.
    this.lastKeys = generation.keys;
    this.lastDomain = generation.domain;
    this.generation = undefined;
    this.server?.generation(null, this.notServing());
    clearInterval(generation.requests);
    generation.runs.stop();
    generation.flow.pipeline.drain();
    await Promise.race([Promise.allSettled(generation.sources.map((s) => s.stop())), new Promise((r) => setTimeout(r, 10_000))]);
    await generation.flow.done.catch(() => undefined);
    await Promise.all(generation.deliveries.map((d) => (drainMs === undefined ? d.stop(10_000) : d.drain(drainMs))));
    await Promise.all(generation.destinations.map((d) => d.stop().catch(() => undefined)));
    generation.outboxWatch.stop();
    // Its sources are stopped: what they reported goes (the next generation's sources report afresh).
    generation.observing.active = false;
    forgetSourceReports(this.metrics);
    if (drainMs === undefined) return;
    // A drain that ends with exports still queued (the timeout passed, or they wait for a retry) says
    // so: an operator tells it from a drain that flushed everything.
    const left = Object.fromEntries(Object.entries(generation.outboxDepths()).filter(([, depth]) => depth > 0));
    if (Object.keys(left).length > 0) this.logger.warn({ drainTimeoutMs: drainMs, depths: left }, "exports left in the outbox at exit: they are sent after the next start");
  }

  /**
   * Reloads the config: an invalid one is refused (every error logged, the running config kept); a
   * valid one replaces the running generation. Requests made while one waits for the reload under way
   * join it (it reads the config when it starts, so it covers them all): the SIGHUPs or file events
   * that arrive while a reload runs add one more reload, not one each.
   */
  reload(reason: string): Promise<ReloadResult> {
    if (this.queuedReload) return this.queuedReload;
    const next = this.reloading.then(() => {
      this.queuedReload = undefined;
      return this.reloadNow(reason);
    });
    this.queuedReload = next;
    this.reloading = next.catch(() => undefined);
    return next;
  }

  private async reloadNow(reason: string): Promise<ReloadResult> {
    if (this.draining) return "ignored";
    this.logger.info({ reason, config: this.options.config }, "reloading the config");
    this.systemd?.reloading("reloading the config");
    const loaded = await Daemon.load(this.options, this.logger);
    if (this.draining) return "ignored";
    const running = this.generation;
    if (loaded.config && running && configDigest(loaded.config) === running.digest) {
      // The config running, read again: nothing to apply, and the sources keep streaming (a reload
      // restarts them). Tools that send SIGHUP on every run of theirs leave /readyz alone.
      this.metrics.configReloads.inc({ result: "unchanged" });
      this.logger.info({ config: this.options.config, configDigest: running.digest }, "config unchanged: the running config goes on");
      this.announceReady();
      return "unchanged";
    }
    if (!loaded.config || !loaded.domain || !loaded.registry) {
      this.metrics.configReloads.inc({ result: "invalid" });
      this.logger.error({ config: this.options.config }, "the new config is invalid: the running config is kept");
      this.systemd?.ready("running: the new config is invalid, the previous one is kept (see the log)");
      return "invalid";
    }
    // The live check of a start: a config naming a table or column the databases do not have is
    // refused as an invalid one is (the running config keeps streaming); one whose database cannot be
    // reached now is applied (its connectors retry it), as at start.
    this.systemd?.status("reloading: checking the sources and destinations against the live systems");
    // Bounded, and given up for a drain: a query waiting on a lock must not hold a SIGTERM back.
    let checking = true;
    const checked = checkLive(loaded.config, loaded.registry).finally(() => (checking = false));
    checked.catch(() => undefined);
    const live = await Promise.race([checked, this.drainOrAfter(RELOAD_LIVE_CHECK_MS, () => checking)]);
    if (this.draining) return "ignored";
    if (live === "timeout") this.logger.warn({ seconds: RELOAD_LIVE_CHECK_MS / 1000 }, "the live check of the new config did not finish in time; applying it anyway (its connectors retry)");
    const problems = live === "timeout" ? [] : live;
    for (const problem of problems) {
      if (problem.permanent) this.logger.error({ [problem.objectClass]: problem.id }, `${formatLiveProblem(problem)}; the new config is refused`);
      else this.logger.warn({ [problem.objectClass]: problem.id }, `${formatLiveProblem(problem)}; applying it anyway (it is retried)`);
    }
    if (problems.some((p) => p.permanent)) {
      this.metrics.configReloads.inc({ result: "invalid" });
      this.logger.error({ config: this.options.config }, "the new config does not match the live systems: the running config is kept");
      this.systemd?.ready("running: the new config does not match the live systems, the previous one is kept (see the log)");
      return "invalid";
    }
    if (this.draining) return "ignored";
    await this.stopGeneration();
    if (this.draining) return "ignored";
    try {
      await this.startGeneration(loaded.config, loaded.domain, loaded.registry);
    } catch (error) {
      // A config that cannot start (a component's constructor threw, most often, before anything of
      // the state changed) is refused and the one that ran is started again: Runs the new config
      // planned, if it got that far, are planned back by its definitions (the state converges on
      // the config that runs). Connectors created before the throw are dropped unstarted.
      this.metrics.configReloads.inc({ result: "invalid" });
      if (!running) {
        this.logger.error({ err: error }, `the new config cannot start: ${(error as Error).message}`);
        // Not awaited: stopping waits for the reload in progress, which is this one.
        void this.stop(EX_SOFTWARE);
        return "invalid";
      }
      this.logger.error({ err: error, config: this.options.config }, `the new config cannot start: ${(error as Error).message}; the running config is kept (started again)`);
      try {
        await this.startGeneration(running.config, running.domain, running.registry, { digest: running.digest, keys: running.keys });
      } catch (again) {
        this.logger.error({ err: again }, `the running config cannot start again: ${(again as Error).message}`);
        void this.stop(EX_SOFTWARE);
        return "invalid";
      }
      this.systemd?.ready("running: the new config cannot start, the previous one is kept (see the log)");
      return "invalid";
    }
    this.metrics.configReloads.inc({ result: "applied" });
    this.logger.info({ config: this.options.config, configDigest: this.generation?.digest }, "config reloaded");
    this.logApiMode(apiMode(this.lastKeys?.size ?? 0, this.options.apiInsecure ?? false), this.lastKeys);
    this.announceReady();
    return "applied";
  }

  /** Resolves with "timeout" after `ms`, or earlier once a drain began (this.draining); looks while `waiting()`. */
  private async drainOrAfter(ms: number, waiting: () => boolean): Promise<"timeout"> {
    const until = Date.now() + ms;
    while (waiting() && !this.draining && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    return "timeout";
  }

  private watchConfig(): void {
    let timer: NodeJS.Timeout | undefined;
    const changed = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => void this.reload("the config changed (--watch-config)"), 500);
    };
    const path = this.options.config;
    try {
      if (statSync(path).isDirectory()) this.watcher = watch(path, { recursive: true }, changed);
      else {
        // A file is watched through its directory: a watch on the file itself follows its inode, and a
        // file replaced by a rename (an editor's save, `sed -i`, an atomic deploy) would be seen once and
        // never again. A file that is a symbolic link (a Kubernetes ConfigMap's, whose `..data` link is
        // swapped) changes with anything of its directory.
        const name = basename(path);
        const link = lstatSync(path).isSymbolicLink();
        this.watcher = watch(dirname(path), (_event, file) => {
          if (link || file === null || file === name) changed();
        });
      }
    } catch (error) {
      this.logger.warn({ err: error }, "cannot watch the config for changes");
      return;
    }
    // The watch begins once the daemon runs, long after the start read the config (the live check
    // alone may wait on a lock): a change made meanwhile would wait for the next one. It is read again
    // now, and reloaded when it is not the config running.
    void this.reloadIfChangedSinceStart();
  }

  private async reloadIfChangedSinceStart(): Promise<void> {
    const loaded = await Daemon.load(this.options, this.logger.child({}, { level: "silent" }));
    const running = this.generation?.digest;
    if (this.draining || running === undefined) return;
    if (loaded.config && configDigest(loaded.config) === running) return;
    await this.reload("the config changed while the daemon started (--watch-config)");
  }

  /** Drains (SIGTERM, SIGINT): not ready, sources stop, the batch in flight commits, the outbox is flushed up to the drain timeout. */
  async drain(signal: string): Promise<void> {
    if (this.draining) return;
    this.logger.info({ signal }, "draining: not ready, stopping sources, committing the batch in flight");
    await this.stop(0);
  }

  private async stop(code: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.systemd?.stopping(code === 0 ? "draining" : "stopping: the pipeline failed");
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.watcher?.close();
    await this.reloading;
    // A state that refuses writes (a write transaction failed: a full disk) cannot record what the
    // destinations acknowledge: what they were sent now would be sent again after the restart, and
    // each batch's failure to record it logged once more over the error that matters. No drain then.
    await this.stopGeneration(this.store.writesRefused ? 0 : (this.options.drainTimeoutMs ?? 10_000));
    // A listener still booting is waited for, so that it is closed too.
    const server = this.server ?? (await this.listening?.catch(() => undefined));
    await server?.close();
    await this.store.close();
    this.logger.info({ code }, "stopped");
    this.systemd?.close();
    this.settle(code);
  }

  /** The state, for in-process tests and benchmarks. */
  get state(): Store {
    return this.store;
  }

  /**
   * The domain the state's gauges are read for: the running generation's, or while a reload builds
   * the next, the one before it (a scrape then sees every series, not a gap); none once stopping.
   */
  get metricsDomain(): Domain | undefined {
    return this.generation?.domain ?? (this.draining ? undefined : this.lastDomain);
  }

  /** The Runs of the running generation. */
  get runs(): Runs | undefined {
    return this.generation?.runs;
  }
}
