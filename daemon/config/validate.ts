// Validation of a whole config: the shape of each object against its class schema and its type's
// options schema, then everything across objects (references, primary keys, rules, mappings).
// Every problem is collected; none stops the others from being found.
import { Type, type TSchema } from "@sinclair/typebox";
import { Ajv } from "ajv";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { Value } from "@sinclair/typebox/value";
import {
  MAX_GROUP_RULES,
  PROPERTY_TYPES,
  RELATIVE_OPERATORS,
  RULE_OPERATORS_BY_TYPE,
  SORTED_AGGREGATIONS,
  TOP_LEVEL_RULE_KEYS,
  type PropertyType,
} from "../../streams/vocabulary.js";
import { readDebezium, qualifyTable, tableIncluded, type DebeziumSettings } from "./debezium.js";
import type { ConfigIssue, FieldPath, Severity } from "./issues.js";
import { formatField } from "./issues.js";
import type { RawObject } from "./load.js";
import { readConfig } from "./load.js";
import {
  APP_TYPE_OF,
  CLASS_SCHEMAS,
  CONFIG_CLASSES,
  OPTIONS_BY_TYPE,
  POLLING_SOURCE_TYPES,
  type ApiKeyConfig,
  type AppConfig,
  type ConfigClass,
  type DestinationConfig,
  type GroupConfig,
  type ModelConfig,
  type PropertyConfig,
  type ScheduleConfig,
  type SourceConfig,
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
  /** Debezium settings of postgres apps that carry `options.debezium`, by app id. */
  debezium: Record<string, DebeziumSettings>;
}

export interface ValidationResult {
  /** Present when there are no errors (warnings may remain). */
  config?: Config;
  issues: ConfigIssue[];
}

const CLASS_BY_LOWERCASE = new Map(CONFIG_CLASSES.map((c) => [c.toLowerCase(), c]));
const NUMERIC_TYPES: readonly PropertyType[] = ["integer", "float"];

interface Entry {
  cls: ConfigClass;
  id: string;
  raw: RawObject;
  /** The object after defaults, when its shape is valid. */
  value?: Record<string, unknown>;
}

function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function literalChoices(schema: TSchema): string[] | undefined {
  const anyOf = (schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (!anyOf || !anyOf.every((s) => typeof s.const === "string")) return undefined;
  return anyOf.map((s) => String(s.const));
}

function describeError(error: ValueError): string {
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return "is required";
    case ValueErrorType.ObjectAdditionalProperties:
      return "is not a known field";
    case ValueErrorType.Union: {
      const choices = literalChoices(error.schema);
      return choices ? `must be one of ${choices.join(", ")} (got ${JSON.stringify(error.value)})` : error.message;
    }
    case ValueErrorType.String:
      return `must be a string (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.Integer:
      return `must be an integer (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.Boolean:
      return `must be true or false (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.Object:
      return "must be an object";
    case ValueErrorType.Array:
      return "must be a list";
    case ValueErrorType.StringPattern:
      return error.path === "/id"
        ? `may contain only letters, digits and _ . : - (got ${JSON.stringify(error.value)})`
        : `does not match ${(error.schema as { pattern?: string }).pattern} (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.StringMinLength: {
      const min = (error.schema as { minLength?: number }).minLength ?? 1;
      return min <= 1 ? "must not be empty" : `must be at least ${min} characters long`;
    }
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `must be at least ${(error.schema as { minimum?: number }).minimum} (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `must be at most ${(error.schema as { maximum?: number }).maximum} (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.ArrayMinItems:
      return "must not be empty";
    default:
      return error.message;
  }
}

/** Checks value against schema; returns the value with defaults applied and the problems found. */
function checkShape(schema: TSchema, value: unknown): { value: unknown; problems: { path: FieldPath; message: string }[] } {
  const converted = Value.Convert(schema, Value.Clone(value));
  const problems: { path: FieldPath; message: string }[] = [];
  const seen = new Set<string>();
  for (const error of Value.Errors(schema, converted)) {
    // A failing union reports its branches too; the first error per field is the useful one.
    if ([...seen].some((p) => error.path.startsWith(`${p}/`) || error.path === p)) continue;
    seen.add(error.path);
    problems.push({ path: pointerToPath(error.path), message: describeError(error) });
  }
  return { value: problems.length === 0 ? Value.Default(schema, converted) : converted, problems };
}

/** Destination types added by plugins: the app type they write through and their options schema. */
export interface ConfigExtensions {
  /** optionsSchema: a plain JSON Schema object. */
  destinations?: ReadonlyMap<string, { appType: string; optionsSchema?: object }>;
}

/** The destination schema with `type` open to any string, for plugin types. */
const OPEN_DESTINATION_SCHEMA: TSchema = Type.Object(
  { ...CLASS_SCHEMAS.destination.properties, type: Type.String({ minLength: 1, description: "A destination type a plugin registered." }) },
  { additionalProperties: false },
);

const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });

/** A plugin's options, checked against its plain JSON Schema (plugins need not use TypeBox). */
function checkPluginOptions(schema: object, value: unknown): { value: unknown; problems: { path: FieldPath; message: string }[] } {
  const copy = structuredClone(value);
  const validate = ajv.compile(schema);
  if (validate(copy)) return { value: copy, problems: [] };
  const problems = (validate.errors ?? []).map((error) => {
    const path = pointerToPath(error.instancePath);
    if (error.keyword === "required") return { path: [...path, String(error.params.missingProperty)], message: "is required" };
    if (error.keyword === "additionalProperties") return { path: [...path, String(error.params.additionalProperty)], message: "is not a known field" };
    return { path, message: error.message ?? "is invalid" };
  });
  return { value: copy, problems };
}

export function validateObjects(objects: readonly RawObject[], extraIssues: readonly ConfigIssue[] = [], extensions: ConfigExtensions = {}): ValidationResult {
  const issues: ConfigIssue[] = [...extraIssues];
  // Issues are reported phase by phase but read best in file order: remember where each came from.
  const positions = new Map<ConfigIssue, number>();
  const report = (entry: Pick<Entry, "raw" | "id"> & { cls?: string }, path: FieldPath | string, message: string, severity: Severity = "error") => {
    const issue: ConfigIssue = {
      severity,
      file: entry.raw.file,
      objectClass: entry.cls ?? "",
      id: entry.id,
      field: typeof path === "string" ? path : formatField(path),
      message,
    };
    positions.set(issue, entry.raw.index);
    issues.push(issue);
  };

  // 1. Class, id and shape of every object.
  const entries: Entry[] = [];
  const byClass = new Map<ConfigClass, Map<string, Entry>>(CONFIG_CLASSES.map((c) => [c, new Map()]));
  for (const raw of objects) {
    const id = typeof raw.value.id === "string" && raw.value.id !== "" ? raw.value.id : `#${raw.index}`;
    const rawClass = raw.value.class;
    const cls = typeof rawClass === "string" ? CLASS_BY_LOWERCASE.get(rawClass.toLowerCase()) : undefined;
    if (typeof rawClass !== "string") {
      report({ raw, id }, "class", `is required (one of ${CONFIG_CLASSES.join(", ")})`);
      continue;
    }
    if (!cls) {
      report({ raw, id, cls: rawClass.toLowerCase() }, "class", `unknown class "${rawClass}" (expected one of ${CONFIG_CLASSES.join(", ")})`);
      continue;
    }
    const entry: Entry = { cls, id, raw };
    const pluginType = cls === "destination" && typeof raw.value.type === "string" ? extensions.destinations?.get(raw.value.type) : undefined;
    const shape = checkShape(pluginType ? OPEN_DESTINATION_SCHEMA : CLASS_SCHEMAS[cls], raw.value);
    for (const p of shape.problems) report(entry, p.path, p.message);
    let valid = shape.problems.length === 0;
    const optionSchemas = OPTIONS_BY_TYPE[cls];
    const type = raw.value.type;
    const optionSchema = pluginType ? undefined : optionSchemas && typeof type === "string" ? optionSchemas[type] : undefined;
    if (optionSchema || pluginType?.optionsSchema) {
      const options = optionSchema ? checkShape(optionSchema, raw.value.options ?? {}) : checkPluginOptions(pluginType?.optionsSchema ?? {}, raw.value.options ?? {});
      for (const p of options.problems) report(entry, ["options", ...p.path], p.message);
      valid &&= options.problems.length === 0;
      if (valid) (shape.value as Record<string, unknown>).options = options.value;
    }
    if (valid) entry.value = shape.value as Record<string, unknown>;

    const sameClass = byClass.get(cls);
    const previous = sameClass?.get(id);
    if (previous) {
      report(entry, "id", `duplicate ${cls} id; also defined in ${previous.raw.file} (item ${previous.raw.index})`);
      continue;
    }
    if (typeof raw.value.id === "string" && raw.value.id !== "") sameClass?.set(id, entry);
    entries.push(entry);
  }

  // 2. Relations between objects.
  const get = <T>(cls: ConfigClass, id: string): T | undefined => byClass.get(cls)?.get(id)?.value as T | undefined;
  const ref = (entry: Entry, field: FieldPath, id: unknown, cls: ConfigClass): boolean => {
    if (typeof id !== "string") return false;
    if (byClass.get(cls)?.has(id)) return byClass.get(cls)?.get(id)?.value !== undefined;
    const other = CONFIG_CLASSES.find((c) => byClass.get(c)?.has(id));
    report(entry, field, other ? `"${id}" is ${article(other)} ${other}, not ${article(cls)} ${cls}` : `no ${cls} with id "${id}"`);
    return false;
  };
  const valid = (cls: ConfigClass) => [...(byClass.get(cls)?.values() ?? [])].filter((e) => e.value !== undefined);
  const modelOfProperty = (property: PropertyConfig) => get<SourceConfig>("source", property.sourceId)?.modelId;

  const debezium: Record<string, DebeziumSettings> = {};
  for (const entry of valid("app")) {
    const app = entry.value as unknown as AppConfig;
    if (app.type !== "postgres") continue;
    const o = app.options;
    const separate = (["host", "port", "user", "password", "database"] as const).filter((k) => o[k] !== undefined);
    if (o.connectionString !== undefined && separate.length > 0) {
      report(entry, ["options", "connectionString"], `give either connectionString or ${separate.join(", ")}, not both`);
    }
    if (o.debezium) {
      const { settings, issues: found } = readDebezium(o.debezium);
      for (const issue of found) report(entry, ["options", "debezium", issue.key], issue.message, issue.severity);
      debezium[app.id] = settings;
      for (const [field, key] of [["slot", "slot.name"], ["publication", "publication.name"], ["snapshot", "snapshot.mode"]] as const) {
        if (o[field] !== undefined && o.debezium[key] !== undefined && o[field] !== settings[field]) {
          report(entry, ["options", field], `is "${o[field]}" but options.debezium["${key}"] is "${settings[field]}"; give one`);
        }
      }
    }
    if (o.connectionString === undefined && o.database === undefined && debezium[app.id]?.database === undefined) {
      report(entry, "options", "needs connectionString, or database (with host, port, user, password), or options.debezium with database.dbname");
    }
  }

  const checkAppType = (entry: Entry, appId: string, type: string) => {
    const app = get<AppConfig>("app", appId);
    const wanted = (APP_TYPE_OF as Record<string, string>)[type] ?? extensions.destinations?.get(type)?.appType;
    if (app && wanted !== undefined && app.type !== wanted) {
      report(entry, "appId", `app "${appId}" is a ${app.type} app; a ${type} ${entry.cls} needs a ${wanted} app`);
    }
  };

  for (const entry of valid("source")) {
    const source = entry.value as unknown as SourceConfig;
    if (ref(entry, ["appId"], source.appId, "app")) checkAppType(entry, source.appId, source.type);
    ref(entry, ["modelId"], source.modelId, "model");
    if (Object.keys(source.mapping).length === 0) report(entry, "mapping", "maps no column; map a source column to a unique property");
    for (const [column, propertyId] of Object.entries(source.mapping)) {
      if (!ref(entry, ["mapping", column], propertyId, "property")) continue;
      const property = get<PropertyConfig>("property", propertyId);
      if (!property) continue;
      if (!property.unique) report(entry, ["mapping", column], `targets property "${propertyId}", which is not unique`);
      const model = modelOfProperty(property);
      if (model !== undefined && model !== source.modelId) {
        report(entry, ["mapping", column], `targets property "${propertyId}" of model "${model}", not of model "${source.modelId}"`);
      }
    }
    const app = get<AppConfig>("app", source.appId);
    const include = app ? debezium[app.id]?.tableIncludeList : undefined;
    if (source.type === "postgres-cdc" && include && !tableIncluded(include, qualifyTable(source.options.table))) {
      report(entry, ["options", "table"], `${qualifyTable(source.options.table)} is not captured by app "${source.appId}" (options.debezium["table.include.list"])`);
    }
  }

  // Primary keys: the one source per model whose mapping targets a unique property it owns.
  const primaryKeys: Record<string, PrimaryKey> = {};
  const primarySourceIds = new Set<string>();
  const modelsWithInvalidSources = new Set(
    [...(byClass.get("source")?.values() ?? [])].filter((e) => e.value === undefined).map((e) => String(e.raw.value.modelId)),
  );
  for (const entry of valid("model")) {
    const modelId = entry.id;
    // A source that failed its own checks may be the primary one: do not guess, its errors say enough.
    if (modelsWithInvalidSources.has(modelId)) continue;
    const candidates: PrimaryKey[] = [];
    for (const sourceEntry of valid("source")) {
      const source = sourceEntry.value as unknown as SourceConfig;
      if (source.modelId !== modelId) continue;
      for (const [column, propertyId] of Object.entries(source.mapping)) {
        const property = get<PropertyConfig>("property", propertyId);
        if (property?.unique && property.sourceId === source.id) {
          candidates.push({ sourceId: source.id, propertyId, column });
          break;
        }
      }
    }
    if (candidates.length === 0) {
      report(entry, "(model)", "has no primary key: no source maps a column to a unique property of its own");
    } else if (candidates.length > 1) {
      report(entry, "(model)", `has ${candidates.length} primary sources (${candidates.map((c) => c.sourceId).join(", ")}); exactly one source may map to a unique property of its own`);
    } else if (candidates[0]) {
      primaryKeys[modelId] = candidates[0];
      primarySourceIds.add(candidates[0].sourceId);
    }
  }

  for (const entry of valid("property")) {
    const property = entry.value as unknown as PropertyConfig;
    ref(entry, ["sourceId"], property.sourceId, "source");
    const method = property.options.aggregationMethod ?? "exact";
    if (property.unique && property.isArray) report(entry, "isArray", "a unique property cannot be an array");
    if (property.unique && method !== "exact") report(entry, ["options", "aggregationMethod"], `a unique property must use exact (got ${method})`);
    if (method !== "exact" && primarySourceIds.has(property.sourceId)) {
      report(entry, ["options", "aggregationMethod"], `${method} needs a source with many rows per record; "${property.sourceId}" is its model's primary source (one row per record)`);
    }
    if (property.isArray && method !== "exact") report(entry, ["options", "aggregationMethod"], `an array property collects values with exact (got ${method})`);
    if ((method === "sum" || method === "average") && !NUMERIC_TYPES.includes(property.type)) {
      report(entry, ["options", "aggregationMethod"], `${method} needs an integer or float property (type is ${property.type})`);
    }
    if (method === "count" && property.type !== "integer") report(entry, ["options", "aggregationMethod"], `count needs an integer property (type is ${property.type})`);
    const sorted = SORTED_AGGREGATIONS.includes(method);
    if (sorted && property.options.sortColumn === undefined) report(entry, ["options", "sortColumn"], `is required for ${method}`);
    if (!sorted && property.options.sortColumn !== undefined) report(entry, ["options", "sortColumn"], `only applies to most recent value and least recent value (method is ${method})`);
    (property.filters ?? []).forEach((filter, i) => {
      const needsNoMatch = filter.op === "exists" || filter.op === "notExists";
      if (needsNoMatch && filter.match !== undefined) report(entry, ["filters", i, "match"], `op ${filter.op} takes no match`);
      if (!needsNoMatch && filter.match === undefined) report(entry, ["filters", i, "match"], `is required for op ${filter.op}`);
      if (filter.op === "in" && filter.match !== undefined && !Array.isArray(filter.match) && typeof filter.match !== "string") {
        report(entry, ["filters", i, "match"], "op in needs a list (or a comma-separated string)");
      }
      if (filter.op !== "in" && Array.isArray(filter.match)) report(entry, ["filters", i, "match"], `only op in takes a list (op is ${filter.op})`);
    });
  }

  const propertyOfModel = (entry: Entry, field: FieldPath, propertyId: string, modelId: string): PropertyConfig | undefined => {
    if (!ref(entry, field, propertyId, "property")) return undefined;
    const property = get<PropertyConfig>("property", propertyId);
    const model = property && modelOfProperty(property);
    if (property && model !== undefined && model !== modelId) {
      report(entry, field, `property "${propertyId}" belongs to model "${model}", not "${modelId}"`);
      return undefined;
    }
    return property;
  };

  for (const entry of valid("group")) {
    const group = entry.value as unknown as GroupConfig;
    ref(entry, ["modelId"], group.modelId, "model");
    if (group.rules.length > MAX_GROUP_RULES) report(entry, "rules", `has ${group.rules.length} rules; at most ${MAX_GROUP_RULES} are allowed`);
    if (group.rules.length === 0) report(entry, "rules", "is empty; a group without rules matches nobody", "warning");
    group.rules.forEach((rule, i) => {
      const at = (field: string): FieldPath => ["rules", i, field];
      let type: PropertyType | undefined = (TOP_LEVEL_RULE_KEYS as Record<string, PropertyType>)[rule.propertyId];
      if (type === undefined) type = propertyOfModel(entry, at("propertyId"), rule.propertyId, group.modelId)?.type;
      if (type === undefined) return;
      const validOps = RULE_OPERATORS_BY_TYPE[type];
      if (!validOps.includes(rule.op)) {
        report(entry, at("op"), `${rule.op} is not valid for a ${type} property (valid: ${validOps.join(", ")})`);
        return;
      }
      const relative = (RELATIVE_OPERATORS as readonly string[]).includes(rule.op);
      if (relative) {
        if (rule.relativeMatchNumber === undefined) report(entry, at("relativeMatchNumber"), `is required for ${rule.op}`);
        if (rule.relativeMatchUnit === undefined) report(entry, at("relativeMatchUnit"), `is required for ${rule.op}`);
        if (rule.match !== undefined) report(entry, at("match"), `${rule.op} takes relativeMatchNumber and relativeMatchUnit, not match`);
        return;
      }
      for (const field of ["relativeMatchNumber", "relativeMatchUnit"] as const) {
        if (rule[field] !== undefined) report(entry, at(field), `only applies to relative_gt and relative_lt (op is ${rule.op})`);
      }
      if (rule.op === "exists" || rule.op === "notExists") {
        if (rule.match !== undefined) report(entry, at("match"), `${rule.op} takes no match`);
        return;
      }
      if (rule.match === undefined) {
        report(entry, at("match"), `is required for ${rule.op}`);
        return;
      }
      if (rule.match === null || rule.match === "null") {
        if (rule.op !== "eq" && rule.op !== "ne") report(entry, at("match"), `null can only be matched with eq or ne (op is ${rule.op})`);
        return;
      }
      const problem = matchProblem(type, rule.match);
      if (problem) report(entry, at("match"), problem);
    });
  }

  for (const entry of valid("destination")) {
    const destination = entry.value as unknown as DestinationConfig;
    if (ref(entry, ["appId"], destination.appId, "app")) checkAppType(entry, destination.appId, destination.type);
    ref(entry, ["modelId"], destination.modelId, "model");
    if (destination.collection === "group") {
      if (destination.groupId === undefined) report(entry, "groupId", "is required when collection is group");
      else if (ref(entry, ["groupId"], destination.groupId, "group")) {
        const group = get<GroupConfig>("group", destination.groupId);
        if (group && group.modelId !== destination.modelId) {
          report(entry, "groupId", `group "${destination.groupId}" belongs to model "${group.modelId}", not "${destination.modelId}"`);
        }
      }
    } else if (destination.groupId !== undefined) {
      report(entry, "groupId", "only applies when collection is group");
    }
    if (Object.keys(destination.mapping).length === 0) report(entry, "mapping", "maps no property");
    for (const [remote, propertyId] of Object.entries(destination.mapping)) {
      propertyOfModel(entry, ["mapping", remote], propertyId, destination.modelId);
    }
    for (const [remote, groupId] of Object.entries(destination.destinationGroupMemberships ?? {})) {
      if (!ref(entry, ["destinationGroupMemberships", remote], groupId, "group")) continue;
      const group = get<GroupConfig>("group", groupId);
      if (group && group.modelId !== destination.modelId) {
        report(entry, ["destinationGroupMemberships", remote], `group "${groupId}" belongs to model "${group.modelId}", not "${destination.modelId}"`);
      }
    }
    if (destination.type === "postgres-table") {
      const key = destination.options.primaryKey;
      const propertyId = destination.mapping[key];
      if (propertyId === undefined) report(entry, ["options", "primaryKey"], `"${key}" is not a remote field of the mapping`);
      else {
        const property = get<PropertyConfig>("property", propertyId);
        if (property && !property.unique) report(entry, ["options", "primaryKey"], `"${key}" maps property "${propertyId}", which is not unique`);
      }
    }
  }

  for (const entry of valid("schedule")) {
    const schedule = entry.value as unknown as ScheduleConfig;
    if (!ref(entry, ["sourceId"], schedule.sourceId, "source")) continue;
    const source = get<SourceConfig>("source", schedule.sourceId);
    if (source && !POLLING_SOURCE_TYPES.includes(source.type)) {
      report(entry, "sourceId", `source "${source.id}" is a ${source.type} source, which streams; schedules drive ${POLLING_SOURCE_TYPES.join(" and ")}`);
    }
  }

  const scheduled = new Set(valid("schedule").map((e) => (e.value as unknown as ScheduleConfig).sourceId));
  for (const entry of valid("source")) {
    const source = entry.value as unknown as SourceConfig;
    if (POLLING_SOURCE_TYPES.includes(source.type) && !scheduled.has(source.id)) report(entry, "(source)", `is a ${source.type} source without a schedule; it never runs`, "warning");
  }

  const keys = new Map<string, string>();
  for (const entry of valid("apiKey")) {
    const apiKey = entry.value as unknown as ApiKeyConfig;
    if (apiKey.type === "specific" && (apiKey.permissions ?? []).length === 0) report(entry, "permissions", "is required for a specific key");
    if (apiKey.type !== "specific" && apiKey.permissions !== undefined) report(entry, "permissions", "only applies to a specific key (a full key has every permission)");
    const other = keys.get(apiKey.apiKey);
    if (other !== undefined) report(entry, "apiKey", `is the same key as apiKey "${other}"`);
    keys.set(apiKey.apiKey, apiKey.id);
  }

  const fileOrder = new Map(objects.map((o, i) => [o.file, i]));
  issues.sort(
    (a, b) => (fileOrder.get(a.file) ?? -1) - (fileOrder.get(b.file) ?? -1) || (positions.get(a) ?? -1) - (positions.get(b) ?? -1),
  );
  if (issues.some((i) => i.severity === "error")) return { issues };
  const located = <T>(cls: ConfigClass) =>
    entries.filter((e) => e.cls === cls).map((e) => ({ ...(e.value as T), origin: { file: e.raw.file, index: e.raw.index } }));
  return {
    issues,
    config: {
      apps: located<AppConfig>("app"),
      models: located<ModelConfig>("model"),
      sources: located<SourceConfig>("source"),
      properties: located<PropertyConfig>("property"),
      groups: located<GroupConfig>("group"),
      destinations: located<DestinationConfig>("destination"),
      schedules: located<ScheduleConfig>("schedule"),
      apiKeys: located<ApiKeyConfig>("apiKey"),
      primaryKeys,
      debezium,
    },
  };
}

const article = (word: string) => (/^[aeiou]/i.test(word) ? "an" : "a");

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/;

/** Why a rule's match value cannot be compared with a property of this type, or undefined. */
function matchProblem(type: PropertyType, match: string | number | boolean): string | undefined {
  switch (type) {
    case "integer":
    case "float":
      return Number.isFinite(typeof match === "number" ? match : typeof match === "string" && match.trim() !== "" ? Number(match) : NaN)
        ? undefined
        : `${JSON.stringify(match)} is not a number`;
    case "boolean":
      return match === true || match === false || match === "true" || match === "false" ? undefined : `${JSON.stringify(match)} is not true or false`;
    case "date":
      if (typeof match === "number" && Number.isFinite(match)) return undefined;
      if (typeof match === "string" && (/^-?\d+$/.test(match) || (ISO_DATE.test(match) && !Number.isNaN(Date.parse(match))))) return undefined;
      return `${JSON.stringify(match)} is not an ISO-8601 date or epoch milliseconds`;
    default:
      return undefined;
  }
}

export function loadConfig(path: string, env: Readonly<Record<string, string | undefined>> = process.env, extensions: ConfigExtensions = {}): ValidationResult {
  const { objects, issues } = readConfig(path, env);
  return validateObjects(objects, issues, extensions);
}

export { PROPERTY_TYPES };
