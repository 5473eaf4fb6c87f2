// The config language of the domain: one TypeBox schema per Grouparoo code-config class. The classes
// whose `options` depend on their `type` (app, source, destination) take their type names and option
// schemas from the component catalog (connectors/ registers built-ins and plugins alike), so the
// TypeScript types, the published JSON Schema and the README's reference all derive from one place.
import { Type, type Static, type TObject, type TProperties } from "@sinclair/typebox";
import {
  AGGREGATION_METHODS,
  COLLECTIONS,
  FILTER_OPERATORS,
  MATCH_TYPES,
  PROPERTY_TYPES,
  RELATIVE_UNITS,
  RULE_OPERATORS,
  SYNC_MODES,
} from "../vocabulary.js";

/** A Kafka topic's name as Kafka takes it: letters, digits, `.`, `_` and `-`, at most 249. */
export const topicName = (description: string) => Type.String({ minLength: 1, maxLength: 249, pattern: "^[A-Za-z0-9._-]+$", description });

export const literals = <T extends string>(values: readonly T[], description: string, defaultValue?: T) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { description, ...(defaultValue === undefined ? {} : { default: defaultValue }) },
  );

/** The characters of an id, of every class. */
export const ID_PATTERN = "^[A-Za-z0-9_.:-]+$";
const Id = Type.String({ minLength: 1, pattern: ID_PATTERN, description: "Unique id within its class; other objects refer to it. Names every JavaScript object has a member under (`__proto__`, `constructor`, `toString`, ...) are reserved." });
const Ref = (what: string) => Type.String({ minLength: 1, description: `Id of the ${what}.` });
const Name = Type.Optional(Type.String({ description: "Display name (defaults to the id)." }));
const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
export const StringMap = (description: string) => Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), { description });

const base = <T extends TProperties>(fields: T, description: string) =>
  Type.Object(
    { class: Type.String({ description: "The object's class (case-insensitive)." }), id: Id, name: Name, ...fields },
    { additionalProperties: false, description },
  );

const OptionsField = Type.Record(Type.String(), Type.Unknown(), { description: "Options of the type (see the type's table)." });
/** `type` of a class whose types come from the catalog; narrowed to them by `classSchemas`. */
const AnyType = Type.String({ minLength: 1 });

export const AppSchema = base({ type: AnyType, options: OptionsField }, "A connection to an external system, shared by sources and destinations.");

/** Beyond one machine (README, "Relay and workers"): the model's changes on a partitioned Kafka topic. */
export const PartitionedSchema = Type.Object(
  {
    appId: Type.String({ minLength: 1, description: "Id of the kafka app whose cluster holds the model's topics (its groupId is the workers' consumer group)." }),
    topic: Type.Optional(topicName("Topic the relay writes the model's changes to, keyed by record (default grouparoo.<model>.changes).")),
    changelogTopic: Type.Optional(topicName("Compacted topic of the workers' state, one partition per topic partition (default <topic>.changelog).")),
    partitions: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 12, description: "Partitions of both topics when the relay or a worker creates them: the most workers that can share the model." })),
    replicationFactor: Type.Optional(Type.Integer({ minimum: 1, default: 1, description: "Replication factor of both topics when created." })),
  },
  { additionalProperties: false, description: "Shares the model between worker daemons through Kafka partitions (relay and worker modes)." },
);

export const ModelSchema = base(
  {
    type: Type.Optional(literals(["profile", "account", "custom"], "Grouparoo's model type (informational).", "profile")),
    partitioned: Type.Optional(PartitionedSchema),
  },
  "A kind of Record (users, accounts, ...).",
);

export const SourceSchema = base(
  {
    type: AnyType,
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
    unique: Type.Optional(Type.Boolean({ default: false, description: "Identifies a record; a value several records carry is held by the lowest record id, and the others store null (Duplicate Value)." })),
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
    type: AnyType,
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

/**
 * The topics of the HTTP API a specific key is given read and write on (Grouparoo's topic names, those
 * that apply here): `metrics` is /metrics when the daemon runs with --metrics-auth.
 */
export const API_TOPICS = ["status", "record", "group", "run", "export", "deadLetter", "metrics"] as const;
export type ApiTopic = (typeof API_TOPICS)[number];

export const ApiKeySchema = base(
  {
    type: Type.Optional(literals(["full", "specific"], "full: read and write on every topic; specific: what permissionAllRead, permissionAllWrite and permissions give.", "full")),
    apiKey: Type.String({
      minLength: 16,
      description: "The key, as a `${VAR}` reference to an environment variable (a literal key in a file is refused); 16 characters or more. Kept hashed in memory, never logged.",
    }),
    permissionAllRead: Type.Optional(Type.Boolean({ description: "A specific key: read on every topic." })),
    permissionAllWrite: Type.Optional(Type.Boolean({ description: "A specific key: write on every topic." })),
    permissions: Type.Optional(
      Type.Array(
        Type.Object(
          { topic: literals(API_TOPICS, "API topic."), read: Type.Boolean(), write: Type.Boolean() },
          { additionalProperties: false },
        ),
        { description: "A specific key: read and write per topic (status, record, group, run, export, deadLetter, metrics)." },
      ),
    ),
  },
  "A key for the HTTP API and the status page (`Authorization: Bearer <key>`, or HTTP Basic with the key as the password).",
);

const CLASS_SCHEMAS = {
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
/** The classes whose `options` are given by the component of their `type`. */
export const TYPED_CLASSES = ["app", "source", "destination"] as const satisfies readonly ConfigClass[];
export type TypedClass = (typeof TYPED_CLASSES)[number];

/** The class schemas, with `type` of apps, sources and destinations narrowed to the types given. */
export function classSchemas(types: Readonly<Record<TypedClass, readonly string[]>>): Record<ConfigClass, TObject> {
  const typed = (schema: TObject, names: readonly string[], what: string): TObject =>
    Type.Object({ ...schema.properties, type: literals(names, `The ${what} type.`) }, { additionalProperties: false, description: schema.description });
  return {
    ...CLASS_SCHEMAS,
    app: typed(AppSchema, types.app, "app"),
    source: typed(SourceSchema, types.source, "source"),
    destination: typed(DestinationSchema, types.destination, "destination"),
  };
}

export type AppConfig = Static<typeof AppSchema>;
export type SourceConfig = Static<typeof SourceSchema>;
export type DestinationConfig = Static<typeof DestinationSchema>;
export type ModelConfig = Static<typeof ModelSchema>;
export type PartitionedConfig = Static<typeof PartitionedSchema>;
export type PropertyConfig = Static<typeof PropertySchema>;
export type PropertyFilterConfig = Static<typeof PropertyFilterSchema>;
export type GroupConfig = Static<typeof GroupSchema>;
export type GroupRuleConfig = Static<typeof GroupRuleSchema>;
export type ScheduleConfig = Static<typeof ScheduleSchema>;
export type ApiKeyConfig = Static<typeof ApiKeySchema>;
