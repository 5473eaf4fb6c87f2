// The domain compiled from a validated config: per model its primary source and key, per source its
// mapping and the properties it feeds (directly, or as aggregates over many rows), per model its
// compiled groups, per destination what it exports. Built once per config load; pure.
import { aggregateHash, type AggregateSpec } from "./aggregates.js";
import type { GroupRuleConfig, PropertyConfig } from "./config/schema.js";
import type { Config } from "./config/types.js";
import { compileGroup, type CompiledGroup, type GroupRuleSpec } from "./rules.js";
import { topLevelRuleType, type PropertyType, type PropertyValue, type SyncMode, type Collection } from "./vocabulary.js";

export interface PropertyDef {
  id: string;
  modelId: string;
  sourceId: string;
  type: PropertyType;
  unique: boolean;
  isArray: boolean;
  column: string;
  /** How rows of a non-primary source combine into this property's value. */
  aggregate: AggregateSpec;
  /** aggregateHash(aggregate): a record's state of this property stamped otherwise is rebuilt from its rows. */
  aggregateHash: string;
}

export interface MappingEntry {
  column: string;
  propertyId: string;
  type: PropertyType;
}

export interface SourceDef {
  id: string;
  modelId: string;
  /** The model's primary source: one row per record; its rows create and delete records. */
  primary: boolean;
  mapping: readonly MappingEntry[];
  properties: readonly PropertyDef[];
  /**
   * Every column its mapping and its properties read (values, sortColumn, filter keys). A whole row
   * (not a partial one) without one of them does not have it: dropped from the table, filtered out
   * upstream, or misspelt in the config (BatchResult.missingColumns).
   */
  columns: readonly string[];
}

export interface DestinationDef {
  id: string;
  modelId: string;
  collection: Collection;
  groupId?: string;
  syncMode: SyncMode;
  /** remoteField → propertyId */
  mapping: Readonly<Record<string, string>>;
  /** remoteName → groupId */
  groupMemberships: Readonly<Record<string, string>>;
}

export interface ModelDef {
  id: string;
  /**
   * A hash of the aggregations of its properties fed by many rows: a record created under it has no
   * state for a property only because it has no rows for it (a record from before a definition
   * changed may miss a state it has rows for; that one is rebuilt from the rows).
   */
  aggregatesHash: string;
  primarySourceId: string;
  primaryKeyPropertyId: string;
  properties: readonly PropertyDef[];
  /** The unique properties the model's other sources find their records by (rows may wait on them). */
  identityProperties: ReadonlySet<string>;
  groups: readonly CompiledGroup[];
  /** The model's groups (their indexes in `groups`) that read each key: what a change to it re-evaluates. */
  groupsReading: ReadonlyMap<string, readonly number[]>;
  /** 0 .. groups.length - 1: every group, for a new record. */
  allGroupIndexes: readonly number[];
  /** Each group's index in `groups`, by id. */
  groupIndex: ReadonlyMap<string, number>;
  /**
   * One bit for each key the model's groups read (when they read at most 30 keys, else empty): the
   * keys a change touched, as one number, name the union of the groups reading them.
   */
  readBits: ReadonlyMap<string, number>;
  destinations: readonly DestinationDef[];
}

export interface Domain {
  models: ReadonlyMap<string, ModelDef>;
  sources: ReadonlyMap<string, SourceDef>;
  properties: ReadonlyMap<string, PropertyDef>;
  groups: ReadonlyMap<string, CompiledGroup & { modelId: string; fingerprint: string }>;
  destinations: ReadonlyMap<string, DestinationDef>;
}

/** The record's value for a rule key: a property, or a top-level column. */
export type RecordValueMap = Record<string, PropertyValue | PropertyValue[]>;

/** The columns of its source's rows a property reads: its value, its sortColumn, its filters' keys. */
export function columnsRead(p: PropertyDef): string[] {
  return [p.column, ...(p.aggregate.sortColumn === undefined ? [] : [p.aggregate.sortColumn]), ...p.aggregate.filters.map((f) => f.key)];
}

/** columnsRead of a property as its config gives it. */
export function configColumnsRead(p: PropertyConfig): string[] {
  const spec = aggregateSpecOf(p);
  return [spec.column, ...(spec.sortColumn === undefined ? [] : [spec.sortColumn]), ...spec.filters.map((f) => f.key)];
}

/** The aggregation a property config describes (exact, for a property of a primary source). */
export function aggregateSpecOf(p: PropertyConfig): AggregateSpec {
  return {
    method: p.options.aggregationMethod ?? "exact",
    column: p.options.column,
    ...(p.options.sortColumn === undefined ? {} : { sortColumn: p.options.sortColumn }),
    filters: (p.filters ?? []).map((f) => ({ key: f.key, op: f.op, ...(f.match === undefined ? {} : { match: f.match }) })),
    isArray: p.isArray === true,
  };
}

/** A group rule as the rule compiler takes it, given the type of the property (or top-level key) it reads. */
export function ruleSpecOf(r: GroupRuleConfig, type: PropertyType, isArray: boolean): GroupRuleSpec {
  // url values are stored lower-cased, so their matches are compared lower-cased too.
  const match = type === "url" && typeof r.match === "string" && r.match !== "null" ? r.match.toLowerCase() : r.match;
  return {
    key: r.propertyId,
    type,
    isArray,
    op: r.op,
    ...(match === undefined ? {} : { match }),
    ...(r.relativeMatchNumber === undefined ? {} : { relativeMatchNumber: r.relativeMatchNumber }),
    ...(r.relativeMatchUnit === undefined ? {} : { relativeMatchUnit: r.relativeMatchUnit }),
  };
}

/** A model's groups in id order (a record's groups are kept in that order). */
function modelGroups(groups: ReadonlyMap<string, CompiledGroup & { modelId: string }>, modelId: string): CompiledGroup[] {
  return [...groups.values()].filter((g) => g.modelId === modelId).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function groupsReading(groups: readonly CompiledGroup[]): Map<string, number[]> {
  const reading = new Map<string, number[]>();
  groups.forEach((group, index) => {
    for (const key of group.reads) reading.set(key, [...(reading.get(key) ?? []), index]);
  });
  return reading;
}

function readBits(groups: readonly CompiledGroup[]): Map<string, number> {
  const keys = [...new Set(groups.flatMap((group) => [...group.reads]))];
  return keys.length > 30 ? new Map() : new Map(keys.map((key, bit) => [key, 1 << bit]));
}

/** Compiles a validated config; throws only if the validator let through what the compilers refuse (a bug). */
export function compileDomain(config: Config): Domain {
  const sourcesById = new Map(config.sources.map((s) => [s.id, s]));
  const properties = new Map<string, PropertyDef>();
  for (const p of config.properties) {
    const source = sourcesById.get(p.sourceId);
    if (!source) continue;
    properties.set(p.id, {
      id: p.id,
      modelId: source.modelId,
      sourceId: source.id,
      type: p.type,
      unique: p.unique === true,
      isArray: p.isArray === true,
      column: p.options.column,
      aggregate: aggregateSpecOf(p),
      aggregateHash: aggregateHash(aggregateSpecOf(p)),
    });
  }

  const sources = new Map<string, SourceDef>();
  for (const s of config.sources) {
    const primary = config.primaryKeys[s.modelId]?.sourceId === s.id;
    sources.set(s.id, {
      id: s.id,
      modelId: s.modelId,
      primary,
      mapping: Object.entries(s.mapping).map(([column, propertyId]) => ({ column, propertyId, type: properties.get(propertyId)?.type ?? "string" })),
      properties: [...properties.values()].filter((p) => p.sourceId === s.id),
      columns: [
        ...new Set([
          ...Object.keys(s.mapping),
          ...[...properties.values()].filter((p) => p.sourceId === s.id).flatMap(columnsRead),
        ]),
      ],
    });
  }

  const groups = new Map<string, CompiledGroup & { modelId: string; fingerprint: string }>();
  for (const g of config.groups) {
    const rules: GroupRuleSpec[] = g.rules.map((r) => {
      const topLevel = topLevelRuleType(r.propertyId);
      const property = properties.get(r.propertyId);
      return ruleSpecOf(r, topLevel ?? property?.type ?? "string", property?.isArray === true);
    });
    const spec = { id: g.id, matchType: g.matchType ?? "all", rules };
    groups.set(g.id, { ...compileGroup(spec), modelId: g.modelId, fingerprint: JSON.stringify(spec) });
  }

  const destinations = new Map<string, DestinationDef>();
  for (const d of config.destinations) {
    destinations.set(d.id, {
      id: d.id,
      modelId: d.modelId,
      collection: d.collection,
      ...(d.groupId === undefined ? {} : { groupId: d.groupId }),
      syncMode: d.syncMode,
      // Copies: the domain's own (exports.ts compiles them once per destination), not the config's
      // objects a destination connector is also handed.
      mapping: { ...d.mapping },
      groupMemberships: { ...d.destinationGroupMemberships },
    });
  }

  const models = new Map<string, ModelDef>();
  for (const m of config.models) {
    const pk = config.primaryKeys[m.id];
    if (!pk) continue;
    const aggregated = [...properties.values()].filter((p) => p.modelId === m.id && p.sourceId !== pk.sourceId);
    const ordered = modelGroups(groups, m.id);
    models.set(m.id, {
      id: m.id,
      aggregatesHash: aggregateHash({ method: "exact", column: aggregated.map((p) => `${p.id}=${p.aggregateHash}`).sort().join(","), filters: [], isArray: false }),
      primarySourceId: pk.sourceId,
      primaryKeyPropertyId: pk.propertyId,
      properties: [...properties.values()].filter((p) => p.modelId === m.id),
      identityProperties: new Set([...sources.values()].filter((s) => s.modelId === m.id && !s.primary).flatMap((s) => s.mapping.map((e) => e.propertyId))),
      groups: ordered,
      groupsReading: groupsReading(ordered),
      allGroupIndexes: ordered.map((_, i) => i),
      groupIndex: new Map(ordered.map((g, i) => [g.id, i])),
      readBits: readBits(ordered),
      destinations: [...destinations.values()].filter((d) => d.modelId === m.id),
    });
  }
  return { models, sources, properties, groups, destinations };
}
