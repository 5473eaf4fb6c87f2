// The validated config as the rest of the daemon sees it: every object with where it came from, and
// the component catalog the validator checks `type`s and `options` against (connectors/ implements it
// for built-ins and plugins alike; the core only knows this interface).
import type { TSchema } from "@sinclair/typebox";
import type { FieldPath, Severity } from "./issues.js";
import type {
  ApiKeyConfig,
  AppConfig,
  DestinationConfig,
  GroupConfig,
  ModelConfig,
  PropertyConfig,
  ScheduleConfig,
  SourceConfig,
} from "./schema.js";

export interface Origin {
  file: string;
  index: number;
}
export type Located<T> = T & { readonly origin: Origin };

export interface PrimaryKey {
  sourceId: string;
  propertyId: string;
  column: string;
}

export interface Config {
  apps: Located<AppConfig>[];
  models: Located<ModelConfig>[];
  sources: Located<SourceConfig>[];
  properties: Located<PropertyConfig>[];
  groups: Located<GroupConfig>[];
  destinations: Located<DestinationConfig>[];
  schedules: Located<ScheduleConfig>[];
  apiKeys: Located<ApiKeyConfig>[];
  /** The primary key of each model: the unique property its primary source maps to. */
  primaryKeys: Record<string, PrimaryKey>;
}

/** An options schema: TypeBox (checked with its defaults applied), or plain JSON Schema (checked with Ajv). */
export type OptionsSchema = TSchema | Readonly<Record<string, unknown>>;

/** A problem a component's own check found in one object. */
export interface FieldProblem {
  /** The field, as a path from the object (["options", "table"]). */
  field: FieldPath | string;
  message: string;
  severity?: Severity;
}

/** What a component's check may look up: the other objects, resolved (valid ones only). */
export interface CheckContext {
  app(id: string): Located<AppConfig> | undefined;
  property(id: string): Located<PropertyConfig> | undefined;
  /** Every source of the config whose shape is valid (in file order). */
  sources(): Located<SourceConfig>[];
}

interface ComponentSpec<C> {
  /** The name objects give as their `type`. */
  readonly type: string;
  readonly description?: string;
  readonly options: OptionsSchema;
  /** Cross-field checks of one object, with its options already valid and its references resolved. */
  check?(object: Located<C>, context: CheckContext): FieldProblem[];
}

export interface AppSpec extends ComponentSpec<AppConfig> {
  /**
   * Where the data the app reaches lives (a server and database, a directory, a URL), without what
   * only says how to reach it (credentials, timeouts): a destination on an app whose identity changes
   * is sent every record again from nothing, as a fresh daemon would (see core/definitions.ts).
   * Without it, only a change of the destination's app id does that.
   */
  identity?(app: AppConfig): unknown;
  /**
   * What of the app shapes the rows a source of it reads (a postgres app's column.exclude.list for
   * its postgres-cdc sources): when it changes, the source is removed and read again, as a fresh
   * daemon reads it (see core/definitions.ts). Undefined for a source it does not shape.
   */
  sourceReads?(app: AppConfig, source: SourceConfig): unknown;
}

export interface SourceSpec extends ComponentSpec<SourceConfig> {
  /** The app type it reads through. */
  readonly appType: string;
  /** Read on a schedule (driven by schedule objects) rather than streamed. */
  readonly polling?: boolean;
  /** Options that change how it reads, not what: a change of them alone needs no Run (see core/definitions.ts). */
  readonly operationalOptions?: readonly string[];
}

export interface DestinationSpec extends ComponentSpec<DestinationConfig> {
  /** The app type it writes through. */
  readonly appType: string;
  /** Options that change how it writes, not what or where: a change of them alone needs no Run (see core/definitions.ts). */
  readonly operationalOptions?: readonly string[];
}

/** The component types a config may name, by class. */
export interface ComponentCatalog {
  readonly apps: ReadonlyMap<string, AppSpec>;
  readonly sources: ReadonlyMap<string, SourceSpec>;
  readonly destinations: ReadonlyMap<string, DestinationSpec>;
}

/** One object as read from a config file, before validation. */
export interface RawObject {
  /** The file it was read from, relative to the working directory when possible. */
  file: string;
  /** Its position in that file's list. */
  index: number;
  value: Record<string, unknown>;
  /**
   * The fields (formatted paths: "apiKey", "options.password") whose whole value in the file was one
   * `${VAR}` reference without a default: their value is a secret from the environment, not the file.
   */
  fromEnvironment?: readonly string[];
}
