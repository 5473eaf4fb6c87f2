// The one small component interface. Every app, source and destination type, built in or from a
// plugin, is a descriptor: its type name, the app type it runs on, its options schema, its own
// cross-field checks (given the resolved config), the metrics it reports (defined in metrics/) and
// `create`. The registry (registry.ts) assembles them; the config schema, the JSON Schema file and the
// README's reference are generated from it. See ARCHITECTURE.md, "Adding a component".
import type { Observable } from "rxjs";
import type { Logger } from "pino";
import type { Change } from "../core/change.js";
import type { AppConfig, DestinationConfig, PropertyConfig, ScheduleConfig, SourceConfig } from "../core/config/schema.js";
import type { AppSpec, DestinationSpec, Located, SourceSpec } from "../core/config/types.js";
import type { PropertyType } from "../core/vocabulary.js";
import type { MetricName } from "../metrics/names.js";

// --- Sources -------------------------------------------------------------------------------------

export interface SourceConnector {
  /** The app id this connector reads for. */
  readonly appId: string;
  /**
   * The changes it reads, as one shared stream: reading starts with the first subscriber and stops
   * when the last one unsubscribes; it completes after stop().
   */
  changes(): Observable<Change>;
  /** Positions (by stream) whose changes are durably applied: the only ones that may be acknowledged. */
  acknowledge(positions: ReadonlyMap<string, string>): Promise<void>;
  /** Backpressure: stop reading (keep the connection) until resume(). */
  pause(): void;
  resume(): void;
  /** True while connected and streaming. */
  ready(): boolean;
  /** Stops reading; the changes() stream completes once in-flight reads are handed over. */
  stop(): Promise<void>;
  /**
   * A permanent problem (a missing table, permission denied, bad credentials, an invalid connection
   * string) that stops this connector, or part of it, until the system or the config is fixed: the
   * reason, for /readyz and the log; null when there is none. Transient failures (connection refused,
   * reset, timeout, a server shutting down) are not problems: the connector retries them and is only
   * not ready() meanwhile. A connector without this method never reports one.
   */
  problem?(): string | null;
  /**
   * Reads the current rows of these sources again while streaming goes on (a Run; ARCHITECTURE.md,
   * "Runs"). The rows come on changes() like any change; progress comes as markers on the position
   * stream `run:<runId>` (an opaque resume point), and last a marker whose position is "complete".
   * Resolves once reading is under way; a connector that cannot re-read does not have this method.
   */
  reread?(request: RereadRequest): Promise<void>;
}

export interface RereadRequest {
  runId: string;
  sourceIds: readonly string[];
  /** Where an interrupted re-read of this Run stopped (its last progress position). */
  resumeFrom?: string;
}

/** What a source reports for metrics (the definitions live in metrics/). */
export interface SourceObserver {
  consumerLag?(topic: string, partition: number, lag: number): void;
  /** Server WAL position minus the slot's confirmed position, in bytes. */
  replicationLagBytes?(appId: string, bytes: number): void;
  /** Rows of a table read by the initial snapshot so far, and the table's estimated size. */
  snapshotProgress?(sourceId: string, table: string, read: number, estimated: number): void;
}

export interface SourceContext {
  logger: Logger;
  observer?: SourceObserver;
  /** The schedules that drive this connector's polling sources. */
  schedules?: readonly Located<ScheduleConfig>[];
  /** The last durable position of each stream (from the state), to resume from. */
  positions: ReadonlyMap<string, string>;
  /** The properties of its sources (the columns they read). */
  properties?: readonly Located<PropertyConfig>[];
  /**
   * The re-reads (Runs) part-way when the daemon last stopped, which resume after this start: a
   * connector that marks the rows a re-read reads and streams (postgres-cdc) marks them from its first
   * streamed change, not only once the Run asks it to resume.
   */
  rereading?: readonly { readonly runId: string; readonly sourceIds: readonly string[] }[];
  /**
   * Asks for these sources to be read again (a Run, queued like one asked for by hand), resolving once
   * the request is durable: a connector that finds its system changed under it (a captured table made
   * again) converges this way. Absent where nothing runs Runs (the relay).
   */
  requestReread?(sourceIds: readonly string[], reason: string): Promise<void>;
}

/**
 * What a start-time check against the live system found wrong with a config object (`checkLive`):
 * `permanent` problems (a table or query that does not exist or cannot be read, bad credentials)
 * stop `run` with exit 78 and fail `validate --connect`; others (the system could not be reached to
 * check) are warnings: the connector retries once running.
 */
export interface LiveProblem {
  objectClass: "app" | "source" | "destination";
  id: string;
  message: string;
  permanent: boolean;
}

/** What `checkLive` is told beyond the sources it checks (its third argument; a checker may ignore it). */
export interface LiveCheckContext {
  /** The config's properties that read the sources checked (each names its source by `sourceId`). */
  properties: readonly Located<PropertyConfig>[];
}

export interface SourceComponent extends SourceSpec {
  /**
   * Sources of the components naming the same connector, on one app, share one connector (one
   * replication slot, one consumer group, one poller); by default each type has its own.
   */
  readonly connector?: string;
  /** The `grouparoo_` metrics it reports through its SourceObserver. */
  readonly metrics: readonly MetricName[];
  /**
   * Whether a source of this type added now would miss the rows its system already holds, given the
   * positions the state has durably reached (the stream is past its start): then a config change re-reads it.
   */
  needsReread?(source: Located<SourceConfig>, app: Located<AppConfig>, positions: ReadonlyMap<string, string>): boolean;
  create(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext): SourceConnector;
  /**
   * Checks these sources (of one app, this type) against the live system before the daemon starts
   * (and for `validate --connect`): every table or query exists and is readable, with the columns
   * the sources and their properties (`context`) read. Optional.
   */
  checkLive?(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context?: LiveCheckContext): Promise<LiveProblem[]>;
}

// --- Destinations --------------------------------------------------------------------------------

/** One export as a destination receives it (from the durable outbox). */
export interface DeliverableExport {
  seq: number;
  destinationId: string;
  recordId: string;
  oldRecordProperties: Record<string, unknown>;
  newRecordProperties: Record<string, unknown>;
  oldGroups: string[];
  newGroups: string[];
  toDelete: boolean;
  /** enrich: update the record only if the destination already has it. */
  updateOnly: boolean;
  commitTime: number;
}

/** Per-record outcome: ok = applied; info = skipped on purpose (no retry); error = retry, then dead letter. */
export interface ExportResult {
  seq: number;
  status: "ok" | "info" | "error";
  message?: string;
}

/** The statuses a destination may answer an export with (ExportResult's): any other is no answer. */
export const EXPORT_RESULT_STATUSES: ReadonlySet<unknown> = new Set<ExportResult["status"]>(["ok", "info", "error"]);

/** A batch the destination did not take. `retryable` false: rejected as a whole (split to isolate). */
export class DeliveryError extends Error {
  readonly code = "DELIVERY_FAILED";
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "DeliveryError";
  }
}

export interface DestinationConnector {
  readonly destinationId: string;
  /** Applies the batch idempotently (upsert by key); returns a result per export, or throws DeliveryError. */
  deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]>;
  /** True while the destination is reachable as far as the connector knows. */
  ready(): boolean;
  /**
   * A permanent problem of the destination itself (its table missing, permission denied, bad
   * credentials), for /readyz: the reason, or null. Its exports are retried meanwhile, not
   * dead-lettered as bad data. Optional.
   */
  problem?(): string | null;
  stop(): Promise<void>;
}

export interface DestinationContext {
  logger: Logger;
  /** The property type behind each remote field of the mapping (dates are epoch ms in exports). */
  fieldTypes: Readonly<Record<string, PropertyType>>;
}

/** Delivery settings a destination's options may set for it (the daemon's flags set the rest). */
export interface DeliveryTuning {
  batchSize?: number;
}

export interface DestinationComponent extends DestinationSpec {
  /** The `grouparoo_` metrics it reports (beside those every destination's delivery reports). */
  readonly metrics: readonly MetricName[];
  /** Delivery settings taken from the destination's options. */
  delivery?(destination: Located<DestinationConfig>): DeliveryTuning;
  create(destination: Located<DestinationConfig>, app: Located<AppConfig>, context: DestinationContext): DestinationConnector;
  /** Checks the destination against the live system before the daemon starts: its table exists and takes writes. Optional. */
  checkLive?(destination: Located<DestinationConfig>, app: Located<AppConfig>): Promise<LiveProblem[]>;
}

// --- Apps and plugins ------------------------------------------------------------------------------

export type AppComponent = AppSpec;

/** What a plugin package exports (as `default` or `plugin`): components of any kind. */
export interface GrouparooStreamPlugin {
  name: string;
  apps?: AppComponent[];
  sources?: SourceComponent[];
  destinations?: DestinationComponent[];
}
