// The config schema: one TypeBox schema per Grouparoo code-config class and one options schema per
// built-in app/source/destination type. The TypeScript types, the published JSON Schema
// (schema/grouparoo-stream.schema.json) and the README's config reference all derive from here.
import { Type, type Static, type TObject, type TProperties, type TSchema } from "@sinclair/typebox";
import {
  AGGREGATION_METHODS,
  COLLECTIONS,
  FILTER_OPERATORS,
  MATCH_TYPES,
  PROPERTY_TYPES,
  RELATIVE_UNITS,
  RULE_OPERATORS,
  SYNC_MODES,
} from "../../streams/vocabulary.js";

const literals = <T extends string>(values: readonly T[], description: string, defaultValue?: T) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { description, ...(defaultValue === undefined ? {} : { default: defaultValue }) },
  );

const Id = Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_.:-]+$", description: "Unique id within its class; other objects refer to it." });
const Ref = (what: string) => Type.String({ minLength: 1, description: `Id of the ${what}.` });
const Name = Type.Optional(Type.String({ description: "Display name (defaults to the id)." }));
const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const StringMap = (description: string) => Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), { description });

/** A Postgres identifier as accepted for slot and publication names. */
const PgName = (description: string) => Type.String({ pattern: "^[a-z_][a-z0-9_]{0,62}$", description });

export const SNAPSHOT_MODES = ["initial", "no_data", "never", "always", "initial_only", "when_needed"] as const;
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];

// ---------------------------------------------------------------------------------------------
// Options per built-in type.

export const AppOptions = {
  postgres: Type.Object(
    {
      connectionString: Type.Optional(Type.String({ description: "libpq connection URI (postgres://user:pass@host:port/db); or use the separate fields." })),
      host: Type.Optional(Type.String({ description: "Server host (127.0.0.1 when only database is given)." })),
      port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "Server port (5432 when not given)." })),
      user: Type.Optional(Type.String({ description: "User with the REPLICATION attribute (or superuser)." })),
      password: Type.Optional(Type.String({ description: "Password (use ${VAR}); never logged." })),
      database: Type.Optional(Type.String({ description: "Database name." })),
      ssl: Type.Optional(Type.Boolean({ description: "Connect with TLS.", default: false })),
      slot: Type.Optional(PgName("Logical replication slot this app reads (created if missing).")),
      publication: Type.Optional(PgName("Publication covering the app's postgres-cdc tables (created if missing).")),
      snapshot: Type.Optional(literals(SNAPSHOT_MODES, "When to read the tables before streaming (Debezium's snapshot.mode values; initial when not given).")),
      heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 0, description: "Heartbeat period in ms (0 = off) so the slot advances on a quiet database." })),
      refresh: Type.Optional(
        Type.Object(
          {
            query: Type.String({ minLength: 1, description: "A cheap query (e.g. SELECT max(updated_at) FROM users) whose result changing triggers the app's schedules at once." }),
            recurringFrequency: Type.Integer({ minimum: 100, description: "Milliseconds between two runs of the query." }),
          },
          { additionalProperties: false, description: "App Refresh Query for polling sources." },
        ),
      ),
      debezium: Type.Optional(
        Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
          description: "A Debezium Postgres connector config (database.*, slot.name, publication.name, ...) read instead of or beside the fields above.",
        }),
      ),
    },
    { additionalProperties: false },
  ),
  kafka: Type.Object(
    {
      brokers: Type.Union([Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), Type.String({ minLength: 1 })], {
        description: "Bootstrap brokers: a list of host:port, or one comma-separated string.",
      }),
      clientId: Type.Optional(Type.String({ description: "Kafka client id.", default: "grouparoo-stream" })),
      groupId: Type.Optional(Type.String({ description: "Consumer group id.", default: "grouparoo-stream" })),
      sessionTimeoutMs: Type.Optional(Type.Integer({ minimum: 1000, default: 30000, description: "Consumer session timeout: how long a dead member holds its partitions." })),
      ssl: Type.Optional(
        Type.Union(
          [
            Type.Boolean(),
            Type.Object(
              {
                ca: Type.Optional(Type.String({ description: "CA certificate (PEM)." })),
                cert: Type.Optional(Type.String({ description: "Client certificate (PEM)." })),
                key: Type.Optional(Type.String({ description: "Client key (PEM)." })),
                rejectUnauthorized: Type.Optional(Type.Boolean({ default: true })),
              },
              { additionalProperties: false },
            ),
          ],
          { description: "TLS: true, or PEM material." },
        ),
      ),
      sasl: Type.Optional(
        Type.Object(
          {
            mechanism: literals(["plain", "scram-sha-256", "scram-sha-512"], "SASL mechanism."),
            username: Type.String(),
            password: Type.String({ description: "Use ${VAR}; never logged." }),
          },
          { additionalProperties: false, description: "SASL authentication." },
        ),
      ),
    },
    { additionalProperties: false },
  ),
  webhook: Type.Object(
    {
      url: Type.String({ pattern: "^https?://", description: "Base URL exports are POSTed to." }),
      secret: Type.Optional(Type.String({ minLength: 1, description: "HMAC-SHA256 key for the signature header (use ${VAR})." })),
      headers: Type.Optional(StringMap("Extra request headers.")),
      timeoutMs: Type.Optional(Type.Integer({ minimum: 1, default: 10000, description: "Request timeout in ms." })),
    },
    { additionalProperties: false },
  ),
  file: Type.Object(
    {
      directory: Type.String({ minLength: 1, description: "Directory the file destinations write into." }),
    },
    { additionalProperties: false },
  ),
} satisfies Record<string, TObject>;
export type AppType = keyof typeof AppOptions;

export const SourceOptions = {
  "postgres-cdc": Type.Object(
    { table: Type.String({ minLength: 1, description: "Table as schema.table, or table in public." }) },
    { additionalProperties: false },
  ),
  "kafka-debezium": Type.Object(
    {
      topic: Type.String({ minLength: 1, description: "Topic carrying the change events, or /regex/ for every matching topic." }),
      format: Type.Optional(literals(["debezium", "debezium-unwrapped", "json"], "Message format.", "debezium")),
      deadLetterTopic: Type.Optional(Type.String({ minLength: 1, description: "Also copy messages that cannot be decoded to this topic (with the reason in headers)." })),
      maxMessageBytes: Type.Optional(Type.Integer({ minimum: 1, default: 1048576, description: "Larger messages are dead-lettered, not decoded." })),
      unavailableValuePlaceholder: Type.Optional(
        Type.String({
          minLength: 1,
          default: "__debezium_unavailable_value",
          description: "The connector's unavailable.value.placeholder: a column holding it (as text, in an array, or as bytes) keeps its stored value.",
        }),
      ),
      binaryHandlingMode: Type.Optional(
        literals(["bytes", "base64", "base64-url-safe", "hex"], "The connector's binary.handling.mode: how bytea values and the placeholder in them are written.", "bytes"),
      ),
    },
    { additionalProperties: false },
  ),
  "postgres-table-import": Type.Object(
    {
      table: Type.String({ minLength: 1, description: "Table as schema.table, or table in public." }),
      highWatermarkColumn: Type.String({ minLength: 1, description: "Column compared with >= the last high watermark (ties resolved by an offset)." }),
      batchSize: Type.Optional(Type.Integer({ minimum: 1, default: 1000, description: "Rows per query." })),
    },
    { additionalProperties: false },
  ),
  "postgres-query-import": Type.Object(
    { query: Type.String({ minLength: 1, description: "SELECT whose rows are imported on each scheduled run." }) },
    { additionalProperties: false },
  ),
} satisfies Record<string, TObject>;
export type SourceType = keyof typeof SourceOptions;

export const DestinationOptions = {
  "postgres-table": Type.Object(
    {
      table: Type.String({ minLength: 1, description: "Target table (schema.table or table in public); never created." }),
      primaryKey: Type.String({ minLength: 1, description: "Target column upserted on; must be a remote field of the mapping." }),
      groupsColumn: Type.Optional(Type.String({ minLength: 1, description: "text[] column holding the mapped group names." })),
    },
    { additionalProperties: false },
  ),
  "kafka-topic": Type.Object(
    { topic: Type.String({ minLength: 1, description: "Topic written, keyed by record; a tombstone on delete." }) },
    { additionalProperties: false },
  ),
  webhook: Type.Object(
    {
      path: Type.Optional(Type.String({ description: "Path appended to the app's url.", default: "" })),
      batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: "Exports per request." })),
    },
    { additionalProperties: false },
  ),
  "jsonl-file": Type.Object(
    { path: Type.String({ minLength: 1, description: "File (relative to the file app's directory) one export per line is appended to." }) },
    { additionalProperties: false },
  ),
} satisfies Record<string, TObject>;
export type DestinationType = keyof typeof DestinationOptions;

/** Which app type each source and destination type runs on. */
export const APP_TYPE_OF: Readonly<Record<SourceType | DestinationType, AppType>> = {
  "postgres-cdc": "postgres",
  "postgres-table-import": "postgres",
  "postgres-query-import": "postgres",
  "kafka-debezium": "kafka",
  "postgres-table": "postgres",
  "kafka-topic": "kafka",
  webhook: "webhook",
  "jsonl-file": "file",
};

/** Sources read on a schedule (the others stream). */
export const POLLING_SOURCE_TYPES: readonly SourceType[] = ["postgres-table-import", "postgres-query-import"];

// ---------------------------------------------------------------------------------------------
// One schema per class. `options` is validated by the type's own schema (above).

const base = <T extends TProperties>(fields: T, description: string) =>
  Type.Object(
    { class: Type.String({ description: "The object's class (case-insensitive)." }), id: Id, name: Name, ...fields },
    { additionalProperties: false, description },
  );

const typed = <K extends string>(types: readonly K[], what: string) => literals(types, `The ${what} type.`);
const OptionsField = Type.Record(Type.String(), Type.Unknown(), { description: "Options of the type (see the type's table)." });

export const AppSchema = base(
  { type: typed(Object.keys(AppOptions) as AppType[], "app"), options: OptionsField },
  "A connection to an external system, shared by sources and destinations.",
);

export const ModelSchema = base(
  { type: Type.Optional(literals(["profile", "account", "custom"], "Grouparoo's model type (informational).", "profile")) },
  "A kind of Record (users, accounts, ...).",
);

export const SourceSchema = base(
  {
    type: typed(Object.keys(SourceOptions) as SourceType[], "source"),
    appId: Ref("app it reads through"),
    modelId: Ref("model whose records it feeds"),
    mapping: StringMap("{sourceColumn: uniquePropertyId}: how a row finds its record."),
    options: OptionsField,
  },
  "Where rows come from. The source whose mapping targets a unique property it owns is the model's primary source and creates records.",
);

export const PropertyFilterSchema = Type.Object(
  {
    key: Type.String({ minLength: 1, description: "Source column the filter reads." }),
    op: literals(FILTER_OPERATORS, "Filter operator."),
    match: Type.Optional(Type.Union([Scalar, Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()]))], { description: "Value compared (a list for `in`)." })),
  },
  { additionalProperties: false },
);

export const PropertyOptionsSchema = Type.Object(
  {
    column: Type.String({ minLength: 1, description: "Source column (or event field) the value comes from." }),
    aggregationMethod: Type.Optional(literals(AGGREGATION_METHODS, "How many rows per record combine into one value.", "exact")),
    sortColumn: Type.Optional(Type.String({ minLength: 1, description: "Column ordering rows for most/least recent value." })),
  },
  { additionalProperties: false },
);

export const PropertySchema = base(
  {
    type: literals(PROPERTY_TYPES, "Value type; values are normalised to it."),
    sourceId: Ref("source the value comes from"),
    unique: Type.Optional(Type.Boolean({ default: false, description: "Identifies a record; a value held by another record is stored as null (Duplicate Value)." })),
    isArray: Type.Optional(Type.Boolean({ default: false, description: "Holds a list of values (not with unique)." })),
    options: PropertyOptionsSchema,
    filters: Type.Optional(Type.Array(PropertyFilterSchema, { description: "Row filters applied before aggregation." })),
  },
  "A typed value of a record, read from one source.",
);

export const GroupRuleSchema = Type.Object(
  {
    propertyId: Type.String({ minLength: 1, description: "Property id, or grouparooId / grouparooCreatedAt." }),
    op: literals(RULE_OPERATORS, "Operator; which ones are valid depends on the property type."),
    match: Type.Optional(Scalar),
    relativeMatchNumber: Type.Optional(Type.Integer({ minimum: 1, description: "N of relative_gt / relative_lt." })),
    relativeMatchUnit: Type.Optional(literals(RELATIVE_UNITS, "Unit of relative_gt / relative_lt.")),
  },
  { additionalProperties: false },
);

export const GroupSchema = base(
  {
    modelId: Ref("model whose records it holds"),
    type: Type.Optional(Type.Literal("calculated", { description: "Grouparoo's group type; only calculated groups exist here." })),
    matchType: Type.Optional(literals(MATCH_TYPES, "all: every rule matches; any: at least one.", "all")),
    rules: Type.Array(GroupRuleSchema, { description: "Up to 10 rules; a group without rules matches nobody." }),
  },
  "A rule-based segment of a model's records, kept up to date incrementally.",
);

export const DestinationSchema = base(
  {
    type: typed(Object.keys(DestinationOptions) as DestinationType[], "destination"),
    appId: Ref("app it writes through"),
    modelId: Ref("model whose records it receives"),
    collection: literals(COLLECTIONS, "model: every record; group: the members of groupId."),
    groupId: Type.Optional(Ref("tracked group (collection group)")),
    syncMode: literals(SYNC_MODES, "sync creates, updates, deletes; additive never deletes; enrich only updates."),
    mapping: StringMap("{remoteField: propertyId}."),
    destinationGroupMemberships: Type.Optional(StringMap("{remoteName: groupId}: group memberships exported by name.")),
    options: OptionsField,
  },
  "Where records are pushed.",
);

export const ScheduleSchema = base(
  {
    sourceId: Ref("polling source it runs"),
    recurring: Type.Optional(Type.Boolean({ default: true, description: "Run repeatedly." })),
    recurringFrequency: Type.Integer({ minimum: 1000, description: "Milliseconds between runs." }),
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: "Per-run options." })),
  },
  "Drives a polling source (postgres-table-import, postgres-query-import).",
);

export const API_TOPICS = ["status", "records", "groups", "runs", "exports", "deadLetters"] as const;

export const ApiKeySchema = base(
  {
    type: Type.Optional(literals(["full", "specific"], "full: every topic read/write; specific: the listed permissions.", "full")),
    apiKey: Type.String({ minLength: 16, description: "The key (use ${VAR}); stored hashed, never logged." }),
    permissions: Type.Optional(
      Type.Array(
        Type.Object(
          { topic: literals(API_TOPICS, "API topic."), read: Type.Boolean(), write: Type.Boolean() },
          { additionalProperties: false },
        ),
        { description: "Permissions of a specific key." },
      ),
    ),
  },
  "A key for the HTTP API (Authorization: Bearer).",
);

export const CLASS_SCHEMAS = {
  app: AppSchema,
  model: ModelSchema,
  source: SourceSchema,
  property: PropertySchema,
  group: GroupSchema,
  destination: DestinationSchema,
  schedule: ScheduleSchema,
  apiKey: ApiKeySchema,
} as const satisfies Record<string, TObject>;
export type ConfigClass = keyof typeof CLASS_SCHEMAS;
export const CONFIG_CLASSES = Object.keys(CLASS_SCHEMAS) as ConfigClass[];

/** Options schemas by class and type, for the classes whose `options` depend on `type`. */
export const OPTIONS_BY_TYPE: Readonly<Partial<Record<ConfigClass, Readonly<Record<string, TSchema>>>>> = {
  app: AppOptions,
  source: SourceOptions,
  destination: DestinationOptions,
};

type Typed<S extends TObject, O extends Record<string, TObject>> = {
  [K in keyof O]: Omit<Static<S>, "type" | "options" | "class"> & { class: string; type: K; options: Static<O[K]> };
}[keyof O];

export type AppConfig = Typed<typeof AppSchema, typeof AppOptions>;
export type SourceConfig = Typed<typeof SourceSchema, typeof SourceOptions>;
export type DestinationConfig = Typed<typeof DestinationSchema, typeof DestinationOptions>;
export type ModelConfig = Static<typeof ModelSchema>;
export type PropertyConfig = Static<typeof PropertySchema>;
export type PropertyFilterConfig = Static<typeof PropertyFilterSchema>;
export type GroupConfig = Static<typeof GroupSchema>;
export type GroupRuleConfig = Static<typeof GroupRuleSchema>;
export type ScheduleConfig = Static<typeof ScheduleSchema>;
export type ApiKeyConfig = Static<typeof ApiKeySchema>;
export type PostgresAppOptions = Static<(typeof AppOptions)["postgres"]>;
