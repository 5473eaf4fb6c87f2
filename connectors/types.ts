// The connector plugin interface. A source connector serves one app (one replication slot, one
// Kafka consumer) and all the sources configured on it; it turns what it reads into `Change`s and
// acknowledges only the positions the core reports as durable. Built-in connectors live in one
// folder per system and register by app type; third-party plugins implement the same interface.
import type { Observable } from "rxjs";
import type { Logger } from "pino";
import type { AppConfig, DestinationConfig, ScheduleConfig, SourceConfig } from "../daemon/config/schema.js";
import type { Located } from "../daemon/config/validate.js";
import type { Change } from "../streams/change.js";
import type { PropertyType } from "../streams/vocabulary.js";

export interface SourceConnector {
  /** The app id this connector reads for. */
  readonly appId: string;
  /** Starts reading on subscribe; completes after stop(). */
  changes(): Observable<Change>;
  /** Positions (by stream) whose changes are durably applied: the only ones that may be acknowledged. */
  acknowledge(positions: ReadonlyMap<string, string>): Promise<void>;
  /** Backpressure: stop reading (keep the connection) until resume(). */
  pause(): void;
  resume(): void;
  /** True while connected and streaming. */
  ready(): boolean;
  /** Stops reading; the changes() observable completes once in-flight reads are handed over. */
  stop(): Promise<void>;
}

/** What a source reports for metrics (the definitions live in metrics/). */
export interface SourceObserver {
  consumerLag(topic: string, partition: number, lag: number): void;
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
}

export interface SourcePlugin {
  /** The app type it reads (postgres, kafka, ...). */
  appType: string;
  /** The source types it serves on such an app. */
  sourceTypes: readonly string[];
  create(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext): SourceConnector;
}

export class ConnectorRegistry {
  private readonly sources = new Map<string, SourcePlugin>();
  private readonly destinations = new Map<string, DestinationPlugin>();

  registerSource(plugin: SourcePlugin): this {
    for (const type of plugin.sourceTypes) this.sources.set(type, plugin);
    return this;
  }

  registerDestination(plugin: DestinationPlugin): this {
    this.destinations.set(plugin.destinationType, plugin);
    return this;
  }

  sourcePlugin(sourceType: string): SourcePlugin | undefined {
    return this.sources.get(sourceType);
  }

  destinationPlugin(destinationType: string): DestinationPlugin | undefined {
    return this.destinations.get(destinationType);
  }

  /** Config extensions for the destination types plugins added (built-ins are in the schema). */
  extensions(): { destinations: Map<string, { appType: string; optionsSchema?: object }> } {
    const destinations = new Map<string, { appType: string; optionsSchema?: object }>();
    for (const [type, plugin] of this.destinations) {
      if (plugin.appType) destinations.set(type, { appType: plugin.appType, ...(plugin.optionsSchema ? { optionsSchema: plugin.optionsSchema } : {}) });
    }
    return { destinations };
  }
}

/** What a third-party plugin package exports (as `default` or `plugin`). */
export interface GrouparooStreamPlugin {
  name: string;
  sources?: SourcePlugin[];
  destinations?: DestinationPlugin[];
}

// --- Destinations -------------------------------------------------------------------------------

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
  stop(): Promise<void>;
}

export interface DestinationContext {
  logger: Logger;
  /** The property type behind each remote field of the mapping (dates are epoch ms in exports). */
  fieldTypes: Readonly<Record<string, PropertyType>>;
}

export interface DestinationPlugin {
  destinationType: string;
  /** For third-party types: the app type it writes through and the (plain) JSON Schema of its options. */
  appType?: string;
  optionsSchema?: object;
  create(destination: Located<DestinationConfig>, app: Located<AppConfig>, context: DestinationContext): DestinationConnector;
}
