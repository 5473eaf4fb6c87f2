// `grouparoo-stream worker` (README, "Relay and workers"): one of N daemons sharing the config's
// partitioned models through the model topic's consumer group. It owns the partitions the group
// assigns it, each a PartitionTask (streams/partition-task.ts) with its own state under
// --state/<model>/<partition>, restored from the changelog on assignment unless the local copy is
// current, and closed on revocation. A rebalance suspends every partition's deliveries until the
// assignment is known, so exports of a record leave only from the worker that owns it.
import { join } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../core/config/types.js";
import type { Domain } from "../core/domain.js";
import { definitionsOf, definitionsOfModel, operationalOptionsOf, type Definitions } from "../core/definitions.js";
import type { ModelTopics } from "../core/partitions.js";
import { ChangelogReader, PartitionChangelog } from "../connectors/kafka/changelog.js";
import { ensureModelTopics, TopicLayoutError } from "../connectors/kafka/model-topics.js";
import { SEND_STALL_MS } from "../connectors/kafka/relay-producer.js";
import { partitionStream, WorkerConsumer, type PartitionBatch, type PartitionOwner } from "../connectors/kafka/worker-consumer.js";
import type { DestinationConnector } from "../connectors/types.js";
import { createMetrics, createScaleOutMetrics, type Metrics, type ScaleOutMetrics } from "../metrics/registry.js";
import type { ComponentCatalog } from "../core/config/types.js";
import { DEFAULT_DELIVERY_OPTIONS } from "../streams/delivery.js";
import { LostInputError, PartitionTask, UnsupportedConfigChangeError } from "../streams/partition-task.js";
import { DEFAULT_PIPELINE_OPTIONS, pipelineOptions, type PipelineOptions } from "../streams/pipeline.js";
import { STATE_FORMAT } from "../state/store.js";
import { createDestinations, type CreatedDestination } from "./connectors.js";
import { EX_CONFIG, EX_DATAERR, EX_SOFTWARE, withStateLock } from "./exit-codes.js";
import type { RunOptions } from "./daemon.js";
import { readPackageInfo } from "./package-info.js";
import { startProbeServer, type Api } from "./api/server.js";
import { MissingColumnsLog } from "./problems.js";
import { recordCommitted, recordDelivered, recordResult, runCounts, runningProgress, sourceObserver, zeroCounters } from "./observe.js";
import { loadPartitioned } from "./partitioned.js";
import { destinationReasons } from "./readiness.js";
import { finishedWithin, runUntilSignalled, type Drainable } from "./signals.js";

/** A worker takes run's options, minus the API's and the reload's (README, "What worker mode does not have yet"). */
export type WorkerOptions = Pick<RunOptions, "config" | "plugins" | "state" | "http" | "maxBatchSize" | "maxBatchDelayMs" | "drainTimeoutMs" | "outboxBound" | "delivery">;

/** The models of one kafka app, read by one consumer. */
interface Group {
  consumer: WorkerConsumer;
  reader: Map<string, ChangelogReader>;
  models: Map<string, ModelTopics>;
  byTopic: Map<string, ModelTopics>;
}

/** How long each Kafka step of a stop may take (leaving the group, closing clients; the last changelog transaction past the drain). */
const STOP_STEP_MS = 10_000;

export class Worker implements Drainable, PartitionOwner {
  private settle: (code: number) => void = () => undefined;
  readonly finished: Promise<number>;
  private draining = false;
  private server: Api | undefined;
  /** The partitions owned, by topic and partition. */
  private readonly tasks = new Map<string, PartitionTask>();
  /** Owned partitions their pipeline holds back (grouparoo_sources_paused is 1 while any is). */
  private readonly paused = new Set<PartitionTask>();
  private group!: Group;
  private assignment: Promise<void> = Promise.resolve();
  private readonly missingColumns: MissingColumnsLog;

  private constructor(
    private readonly options: WorkerOptions,
    private readonly logger: Logger,
    private readonly config: Config,
    private readonly domain: Domain,
    private readonly destinations: CreatedDestination[],
    private readonly metrics: Metrics,
    private readonly scale: ScaleOutMetrics,
    private readonly marks: PipelineOptions,
    private readonly registry: ComponentCatalog,
  ) {
    this.finished = new Promise((resolve) => (this.settle = resolve));
    this.missingColumns = new MissingColumnsLog(logger, domain);
  }

  static async start(options: WorkerOptions, logger: Logger): Promise<Worker | number> {
    const loaded = await loadPartitioned(options, logger, "a worker has nothing to own");
    if (typeof loaded === "number") return loaded;
    const { config, domain, registry, models, listen } = loaded;
    const apps = new Set([...models.values()].map((m) => m.appId));
    if (apps.size !== 1) {
      logger.error({ config: options.config }, "the partitioned models name different kafka apps; a worker reads one cluster and consumer group");
      return EX_CONFIG;
    }
    const destinations = createDestinations({ ...config, destinations: config.destinations.filter((d) => models.has(d.modelId)) }, registry, logger);
    // The worker being built, for the gauges that read it at scrape time.
    const self: { worker?: Worker } = {};
    const stores = () => [...(self.worker?.tasks.values() ?? [])].flatMap((t) => (t.state ? [t.state] : []));
    const sum = (ids: Iterable<string>, count: (id: string) => number) => [...ids].map((id) => [id, count(id)] as [string, number]);
    const metrics = createMetrics({
      records: () => sum(models.keys(), (m) => stores().reduce((n, s) => n + s.countOf("records", m), 0)),
      members: () => sum(domain.groups.keys(), (g) => stores().reduce((n, s) => n + s.countOf("members", g), 0)),
      outboxDepth: () => {
        const partitions = stores().map((s) => new Map(s.namedOutboxDepths(destinations.map((d) => d.connector.destinationId))));
        return sum(destinations.map((d) => d.connector.destinationId), (d) => partitions.reduce((n, depths) => n + (depths.get(d) ?? 0), 0));
      },
      runs: () => runCounts(stores()),
      // Each partition runs its own Runs (often the same ones at once): the run label names the partition too.
      runProgress: () => runningProgress([...(self.worker?.tasks.values() ?? [])].flatMap((t) => t.pendingRuns().map((r) => ({ ...r, id: `${t.modelId}/${t.partition}/${r.id}` })))),
    }, { version: readPackageInfo().version, node: process.version, layout: STATE_FORMAT });
    // The counters the alerts watch start at 0 for the partitioned models' sources and destinations.
    zeroCounters(metrics, { sources: config.sources.filter((s) => models.has(s.modelId)), destinations: destinations.map((d) => ({ id: d.connector.destinationId })) });
    const scale = createScaleOutMetrics(metrics.registry, {
      partitionsOwned: () => {
        const counts = new Map<string, number>([...models.keys()].map((m) => [m, 0]));
        for (const task of self.worker?.tasks.values() ?? []) counts.set(task.modelId, (counts.get(task.modelId) ?? 0) + 1);
        return counts;
      },
    });
    const marks = pipelineOptions(options.maxBatchSize ?? DEFAULT_PIPELINE_OPTIONS.maxBatchSize, options.maxBatchDelayMs ?? DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs);
    const worker = new Worker(options, logger, config, domain, destinations, metrics, scale, marks, registry);
    self.worker = worker;
    const appId = [...apps][0] as string;
    const app = config.apps.find((a) => a.id === appId);
    if (!app) return EX_CONFIG;
    const byTopic = new Map([...models.values()].map((m) => [m.topic, m]));
    const consumer = new WorkerConsumer(
      app,
      [...byTopic.keys()],
      (topic) => ({ firstSourceId: config.sources.find((s) => s.modelId === byTopic.get(topic)?.modelId)?.id ?? "" }),
      worker,
      logger.child({ app: appId }),
      sourceObserver(metrics),
    );
    worker.group = { consumer, reader: new Map(), models, byTopic };
    // Listening first: a port in use fails the start before the worker joins the group (and moves partitions).
    try {
      worker.server = await startProbeServer({ notReady: () => worker.notReady(), metrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }) }, listen);
    } catch (error) {
      logger.error({ err: error, http: options.http }, "cannot listen for HTTP");
      await worker.stop(EX_SOFTWARE);
      return EX_SOFTWARE;
    }
    try {
      const admin = consumer.kafka.admin();
      await admin.connect();
      try {
        for (const topics of models.values()) await ensureModelTopics(admin, topics, true);
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
      worker.admin = consumer.kafka.admin();
      await worker.admin.connect();
      for (const topics of models.values()) {
        const reader = new ChangelogReader(consumer.kafka, worker.admin, topics.changelogTopic, consumer.groupId, logger.child({ model: topics.modelId }));
        await reader.start();
        worker.group.reader.set(topics.modelId, reader);
      }
      await consumer.start();
    } catch (error) {
      logger.error({ err: error }, error instanceof TopicLayoutError ? error.message : `the worker cannot start on its Kafka cluster: ${(error as Error).message}`);
      await worker.stop(EX_SOFTWARE);
      return EX_SOFTWARE;
    }
    logger.info({ models: [...models.values()].map((m) => ({ model: m.modelId, topic: m.topic, changelog: m.changelogTopic, partitions: m.partitions })), group: consumer.groupId, http: options.http }, "grouparoo-stream worker running");
    return worker;
  }

  private admin: ReturnType<WorkerConsumer["kafka"]["admin"]> | undefined;
  /** For tests: how long a changelog transaction may wait for the broker before /readyz says so (SEND_STALL_MS, as the relay's sends). */
  changelogStallMs = SEND_STALL_MS;

  notReady(): string | null {
    if (this.draining) return "draining";
    if (!this.group.consumer.ready()) return "not in the consumer group (joining or rebalancing)";
    const reasons: string[] = [];
    const restoring = [...this.tasks.values()].filter((t) => !t.isOpen).map((t) => `${t.modelId}/${t.partition}`);
    if (restoring.length > 0) reasons.push(`taking over partitions: ${restoring.join(", ")}`);
    // A changelog transaction the broker has not acknowledged for long (kafkajs retries it without end:
    // the broker down or hung) holds its partition's input and exports back, as the relay's /readyz says of its sends.
    const now = Date.now();
    const waiting = [...this.tasks.values()].flatMap((t) => {
      const ms = t.changelogWaiting(now);
      return ms !== undefined && ms > this.changelogStallMs ? [`${t.modelId}/${t.partition} (${Math.round(ms / 1000)} s)`] : [];
    });
    if (waiting.length > 0) reasons.push(`kafka not acknowledging: the changelog transactions of partitions ${waiting.join(", ")} wait for the broker`);
    // As `run`'s: every destination reachable (before 2026-12-03 a worker stayed ready while they failed).
    reasons.push(...destinationReasons(this.destinations.map((d) => d.connector)));
    return reasons.length > 0 ? reasons.join("; ") : null;
  }

  // --- PartitionOwner --------------------------------------------------------------------------

  rebalancing(): void {
    for (const task of this.tasks.values()) task.suspend();
  }

  assigned(assignment: ReadonlyMap<string, readonly number[]>): void {
    this.assignment = this.assignment.then(() => this.reassign(assignment)).catch((error: unknown) => this.logger.error({ err: error }, "taking the assignment failed"));
  }

  private async reassign(assignment: ReadonlyMap<string, readonly number[]>): Promise<void> {
    if (this.draining) return;
    const wanted = new Set<string>();
    for (const [topic, partitions] of assignment) for (const p of partitions) if (this.group.byTopic.has(topic)) wanted.add(`${topic}\u0000${p}`);
    const revoked = [...this.tasks].filter(([key]) => !wanted.has(key));
    for (const [key] of revoked) this.tasks.delete(key);
    await Promise.all(revoked.map(([, task]) => task.close()));
    // A partition that moved away leaves its gauges with its new owner (their sums stay the group's).
    for (const [, task] of revoked) {
      this.paused.delete(task);
      this.metrics.kafkaConsumerLag.remove({ topic: task.topic, partition: String(task.partition) });
      this.metrics.replicationLagSeconds.remove({ stream: partitionStream(this.group.consumer.app.id, task.topic, task.partition) });
    }
    this.metrics.sourcesPaused.set(this.paused.size > 0 ? 1 : 0);
    const added: PartitionTask[] = [];
    for (const key of wanted) {
      const kept = this.tasks.get(key);
      if (kept) {
        kept.resume();
        continue;
      }
      const [topic, p] = key.split("\u0000") as [string, string];
      const task = this.createTask(topic, Number(p));
      this.tasks.set(key, task);
      added.push(task);
    }
    for (const model of this.group.models.keys()) this.scale.rebalances.inc({ model });
    this.logger.info({ owned: [...this.tasks.values()].map((t) => `${t.modelId}/${t.partition}`), added: added.map((t) => `${t.modelId}/${t.partition}`), revoked: revoked.map(([, t]) => `${t.modelId}/${t.partition}`) }, "partitions assigned");
    for (const task of added) {
      void task.open().then(
        (takeover) => {
          this.scale.restoreSeconds.observe({ model: task.modelId, how: takeover.how }, takeover.seconds);
          if (takeover.records > 0) this.scale.restoredRecords.inc({ model: task.modelId }, takeover.records);
        },
        (error: unknown) => {
          // A partition closed while it was being taken over (revoked, or the worker stops) is no failure.
          if (this.draining || this.tasks.get(`${task.topic}\u0000${task.partition}`) !== task) return;
          if (error instanceof UnsupportedConfigChangeError) {
            // Starting over would meet the same config: the worker stops for good (78, as systemd's unit is told not to restart).
            this.logger.error({ model: task.modelId, partition: task.partition }, `${error.message}; not starting`);
            void this.stop(EX_CONFIG);
            return;
          }
          if (error instanceof LostInputError) {
            // Starting over would find the same events gone: 65, which the systemd unit does not restart.
            this.logger.error({ model: task.modelId, partition: task.partition }, `${error.message}; not starting`);
            void this.stop(EX_DATAERR);
            return;
          }
          this.logger.error({ err: error, partition: task.partition }, "taking the partition over failed; the worker stops so it can start over");
          void this.stop(EX_SOFTWARE);
        },
      );
    }
  }

  private readonly definitions = new Map<string, Definitions>();

  /** The config's definitions of one model, computed once. */
  private definitionsOf(modelId: string): Definitions {
    let found = this.definitions.get(modelId);
    if (!found) this.definitions.set(modelId, (found = definitionsOfModel(definitionsOf(this.config, this.domain, this.registry), modelId)));
    return found;
  }

  private createTask(topic: string, partition: number): PartitionTask {
    const topics = this.group.byTopic.get(topic) as ModelTopics;
    const consumer = this.group.consumer;
    const model = topics.modelId;
    const logger = this.logger.child({ model, partition });
    const changelog = new PartitionChangelog(consumer.kafka, this.admin as NonNullable<Worker["admin"]>, { changelogTopic: topics.changelogTopic, inputTopic: topic, groupId: consumer.groupId, partition });
    const delivery = { ...DEFAULT_DELIVERY_OPTIONS, ...this.options.delivery };
    const task = new PartitionTask({
      modelId: model,
      topic,
      partition,
      stream: partitionStream(consumer.app.id, topic, partition),
      appId: consumer.app.id,
      statePath: join(this.options.state, model, String(partition)),
      domain: this.domain,
      definitions: this.definitionsOf(model),
      operational: operationalOptionsOf(this.registry),
      runEvents: {
        progressed: (run, items) => this.metrics.runItems.inc({ kind: run.kind }, items),
        applied: (_run, result) => recordResult(this.metrics, result),
      },
      changelog,
      reader: this.group.reader.get(model) as ChangelogReader,
      destinations: this.destinations
        .filter(({ connector }) => this.config.destinations.find((d) => d.id === connector.destinationId)?.modelId === model)
        .map(({ connector, tuning }) => ({ connector: connector as DestinationConnector, delivery: { ...delivery, ...tuning } })),
      pipeline: this.marks,
      outboxBound: this.options.outboxBound ?? 100_000,
      logger,
      pauseInput: (paused) => consumer.pause(topic, partition, paused),
      seekInput: (offset) => consumer.seek(topic, partition, offset),
      events: {
        committed: (batch) => {
          recordCommitted(this.metrics, batch);
          this.missingColumns.saw(batch.result);
        },
        failed: (error) => logger.error({ err: error }, "pipeline failed"),
        pressure: (_reason, _full, paused) => {
          // 1 while any owned partition is held back.
          if (paused) this.paused.add(task);
          else this.paused.delete(task);
          this.metrics.sourcesPaused.set(this.paused.size > 0 ? 1 : 0);
        },
        delivered: (destinationId, outcomes, size) => recordDelivered(this.metrics, destinationId, outcomes, size),
        changelogCommitted: (records) => {
          this.scale.changelogRecords.inc({ model }, records);
          this.scale.changelogTransactions.inc({ model, result: "committed" });
        },
        changelogFailed: () => this.scale.changelogTransactions.inc({ model, result: "failed" }),
        lost: (error) => {
          // Fenced or failing: another worker holds the partition now, or the broker refuses; start over.
          // Input deleted before it was applied: starting over would find it gone (65, not restarted).
          if (this.tasks.get(`${topic}\u0000${partition}`) === task && !this.draining) void this.stop(error instanceof LostInputError ? EX_DATAERR : EX_SOFTWARE);
        },
      },
    });
    return task;
  }

  crashed(error: Error): void {
    // Owning nothing and reading nothing, it would stay up unready for good: its supervisor starts it again.
    if (this.draining) return;
    this.logger.error({ err: error }, `the worker's kafka consumer stopped on an error kafkajs does not retry (${error.message}); the worker stops so that its supervisor starts it again`);
    void this.stop(EX_SOFTWARE);
  }

  async batch(batch: PartitionBatch): Promise<void> {
    const task = this.tasks.get(`${batch.topic}\u0000${batch.partition}`);
    if (!task) return;
    await task.process(batch.changes, batch.lastOffset, batch.heartbeat, batch.running);
  }

  // --- Lifecycle ---------------------------------------------------------------------------------

  drain(signal: string): Promise<void> {
    this.logger.info({ signal }, "draining");
    return this.stop(0);
  }

  /** Waits for `step` at most `ms`; says so at warn when it is left unfinished. */
  private async bounded(step: Promise<unknown> | undefined, ms: number, what: string): Promise<void> {
    if (!(await finishedWithin(step, ms))) this.logger.warn({ seconds: ms / 1000 }, `${what} within ${ms / 1000} s (Kafka does not answer); the worker stops without it (the partitions' next owner restores what the changelog holds)`);
  }

  private async stop(code: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // Deliver what is committed while the partitions are still ours, then leave the group.
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    // Each step waits for Kafka, whose clients retry without end while the broker is down or hung:
    // bounded, so that a stop ends (before 2026-12-03 it waited for ever). What did not commit is
    // not lost: the partitions' next owner restores what the changelog holds, and reads on from there.
    const drainMs = code === 0 ? (this.options.drainTimeoutMs ?? 10_000) : undefined;
    await this.bounded(Promise.all(tasks.map((t) => t.close(drainMs))), (drainMs ?? 5_000) + STOP_STEP_MS, "the partitions' last changelog transaction did not commit");
    await this.bounded(
      Promise.all([this.group?.consumer.stop(), ...[...(this.group?.reader.values() ?? [])].map((r) => r.stop()), this.admin?.disconnect().catch(() => undefined)]),
      STOP_STEP_MS,
      "leaving the consumer group and closing the Kafka clients did not finish",
    );
    await Promise.all(this.destinations.map((d) => d.connector.stop().catch(() => undefined)));
    await this.server?.close();
    this.logger.info({ code }, "stopped");
    this.settle(code);
  }
}

export function runWorker(options: WorkerOptions, logger: Logger): Promise<number> {
  return withStateLock(options.state, () => runUntilSignalled(() => Worker.start(options, logger), logger, "worker"));
}
