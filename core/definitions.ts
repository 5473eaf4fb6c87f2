// The definitions a state was built from, and the Runs a config change needs (invariant 9): the state
// records, for every model, source, property, group and destination, what it was built with; at start
// and on reload the stored definitions are compared with the config's, and exactly what changed gets a
// Run, after which the state equals what a fresh daemon on the new config builds from the same data.
// Pure: the caller supplies what the state and the connectors know (which sources would miss their
// existing rows unless they are read again).
import type { AggregateSpec } from "./aggregates.js";
import type { ComponentCatalog, Config } from "./config/types.js";
import type { Domain } from "./domain.js";

export interface ModelDefinition {
  primarySourceId: string;
  primaryKeyPropertyId: string;
}

export interface SourceDefinition {
  modelId: string;
  type: string;
  appId: string;
  primary: boolean;
  mapping: Record<string, string>;
  options: Record<string, unknown>;
  /** What of its app shapes the rows it reads (AppSpec.sourceReads), when the app's type says; absent in states recorded before 2026-12-03. */
  reads?: unknown;
}

export interface PropertyDefinition {
  modelId: string;
  sourceId: string;
  type: string;
  unique: boolean;
  isArray: boolean;
  aggregate: AggregateSpec;
}

export interface GroupDefinition {
  modelId: string;
  /** The compiled rules (types included): a property changing type changes the group too. */
  fingerprint: string;
}

export interface DestinationDefinition {
  modelId: string;
  type: string;
  appId: string;
  /** Its app's identity (AppSpec.identity), when the app's type has one; absent in states recorded before 2026-12-03. */
  app?: unknown;
  options: Record<string, unknown>;
  collection: string;
  groupId: string | null;
  syncMode: string;
  mapping: Record<string, string>;
  groupMemberships: Record<string, string>;
}

export interface Definitions {
  models: Record<string, ModelDefinition>;
  sources: Record<string, SourceDefinition>;
  properties: Record<string, PropertyDefinition>;
  groups: Record<string, GroupDefinition>;
  destinations: Record<string, DestinationDefinition>;
}

export type DefinitionClass = keyof Definitions;
export const DEFINITION_CLASSES: readonly DefinitionClass[] = ["models", "sources", "properties", "groups", "destinations"];

/** A definition to record (or, with `definition: null`, to forget) once a Run is done. */
export interface DefinitionUpdate {
  cls: DefinitionClass;
  id: string;
  definition: Definitions[DefinitionClass][string] | null;
}

/**
 * The options of a source or destination type that change how it works, not what it reads or writes
 * (SourceSpec and DestinationSpec's operationalOptions: a dead-letter topic, a batch size, a
 * timeout). They are left out of its definition, so that a change of them alone needs no Run.
 */
export type OperationalOptions = (cls: "sources" | "destinations", type: string) => readonly string[] | undefined;

/** The operational options the catalog's source and destination types declare. */
export function operationalOptionsOf(catalog: ComponentCatalog): OperationalOptions {
  return (cls, type) => (cls === "sources" ? catalog.sources : catalog.destinations).get(type)?.operationalOptions;
}

/**
 * The definitions without the operational options of their sources and destinations (a state may
 * have recorded them before they were left out): what is compared with a config's.
 */
export function withoutOperational(definitions: Definitions, operational: OperationalOptions | undefined): Definitions {
  if (!operational) return definitions;
  const strip = <D extends SourceDefinition | DestinationDefinition>(cls: "sources" | "destinations", record: Record<string, D>): Record<string, D> =>
    Object.fromEntries(Object.entries(record).map(([id, d]) => [id, stripped(cls, d, operational)]));
  return { ...definitions, sources: strip("sources", definitions.sources), destinations: strip("destinations", definitions.destinations) };
}

function stripped<D extends SourceDefinition | DestinationDefinition>(cls: "sources" | "destinations", definition: D, operational: OperationalOptions): D {
  const left = operational(cls, definition.type);
  if (!left || left.length === 0 || !left.some((key) => Object.hasOwn(definition.options, key))) return definition;
  return { ...definition, options: Object.fromEntries(Object.entries(definition.options).filter(([key]) => !left.includes(key))) };
}

/**
 * Unsettled entries with the operational options of their definitions left out (see
 * withoutOperational). An entry whose target differs from the recorded definition (`recorded`, as
 * the state holds it) in those options alone was planned by a version that counted them: Runs it no
 * longer plans (a source removed and read again, a destination reset) were part-way, and the object is
 * redone whole.
 */
export function unsettledWithoutOperational(entries: readonly Unsettled[], operational: OperationalOptions | undefined, recorded?: Definitions): Unsettled[] {
  if (!operational) return [...entries];
  return entries.map((u) => {
    if (u.cls !== "sources" && u.cls !== "destinations") return u;
    const cls = u.cls;
    const strip = (d: AnyDefinition | null) => (d === null ? null : stripped(cls, d as SourceDefinition | DestinationDefinition, operational));
    const target = strip(u.target);
    const before = recorded?.[cls][u.id];
    const byOperationalAlone = before !== undefined && u.target !== null && !same(u.target, before) && same(target, strip(before));
    return { ...u, target, seen: strip(u.seen) as AnyDefinition, ...(byOperationalAlone ? { redo: true } : {}) };
  });
}

const sorted = <T>(record: Readonly<Record<string, T>>): Record<string, T> => Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** The definitions of a validated config, as the state records them. */
export function definitionsOf(config: Config, domain: Domain, catalog?: ComponentCatalog): Definitions {
  const operational = catalog ? operationalOptionsOf(catalog) : undefined;
  const appIdentity = (appId: string): { app?: unknown } => {
    const app = config.apps.find((a) => a.id === appId);
    const identity = app && catalog?.apps.get(app.type)?.identity?.(app);
    return identity === undefined ? {} : { app: JSON.parse(JSON.stringify(identity)) as unknown };
  };
  const sourceReads = (source: Config["sources"][number]): { reads?: unknown } => {
    const app = config.apps.find((a) => a.id === source.appId);
    const reads = app && catalog?.apps.get(app.type)?.sourceReads?.(app, source);
    return reads === undefined ? {} : { reads: JSON.parse(JSON.stringify(reads)) as unknown };
  };
  const definitions: Definitions = { models: {}, sources: {}, properties: {}, groups: {}, destinations: {} };
  for (const [id, model] of domain.models) definitions.models[id] = { primarySourceId: model.primarySourceId, primaryKeyPropertyId: model.primaryKeyPropertyId };
  for (const source of config.sources) {
    definitions.sources[source.id] = {
      modelId: source.modelId,
      type: source.type,
      appId: source.appId,
      primary: domain.sources.get(source.id)?.primary === true,
      mapping: sorted(source.mapping),
      options: sorted(source.options),
      ...sourceReads(source),
    };
  }
  for (const [id, property] of domain.properties) {
    definitions.properties[id] = { modelId: property.modelId, sourceId: property.sourceId, type: property.type, unique: property.unique, isArray: property.isArray, aggregate: property.aggregate };
  }
  for (const [id, group] of domain.groups) definitions.groups[id] = { modelId: group.modelId, fingerprint: group.fingerprint };
  for (const destination of config.destinations) {
    definitions.destinations[destination.id] = {
      modelId: destination.modelId,
      type: destination.type,
      appId: destination.appId,
      ...appIdentity(destination.appId),
      options: sorted(destination.options),
      collection: destination.collection,
      groupId: destination.groupId ?? null,
      syncMode: destination.syncMode,
      mapping: sorted(destination.mapping),
      groupMemberships: sorted(destination.destinationGroupMemberships ?? {}),
    };
  }
  return withoutOperational(definitions, operational);
}

/** The definitions of one model and what belongs to it: what a state holding only that model records (a worker's partition). */
export function definitionsOfModel(definitions: Definitions, modelId: string): Definitions {
  const of = <T extends { modelId: string }>(record: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(record).filter(([, d]) => d.modelId === modelId));
  const model = definitions.models[modelId];
  return { models: model ? { [modelId]: model } : {}, sources: of(definitions.sources), properties: of(definitions.properties), groups: of(definitions.groups), destinations: of(definitions.destinations) };
}

/** What one Run does; `updates` are the definitions recorded when it is done. */
export type RunSpec =
  | { kind: "remove-destination"; destinationId: string }
  | { kind: "remove-group"; groupId: string; modelId: string }
  | { kind: "remove-property"; propertyId: string; modelId: string; unique: boolean }
  | { kind: "remove-source"; sourceId: string; modelId: string; primary: boolean }
  | { kind: "remove-model"; modelId: string }
  | { kind: "reread"; sourceId: string; modelId: string }
  /** scan: the row store read in key order, states kept per record, written after (a definition change); else each record from its rows (a repair). */
  | { kind: "rebuild"; sourceId: string; modelId: string; propertyIds: string[]; scan?: boolean }
  | { kind: "backfill"; groupId: string; modelId: string }
  | { kind: "export"; destinationId: string; modelId: string; reset: boolean };

export type RunKind = RunSpec["kind"];
export const RUN_KINDS: readonly RunKind[] = ["remove-destination", "remove-group", "remove-property", "remove-source", "remove-model", "reread", "rebuild", "backfill", "export"];

export interface PlannedRun {
  spec: RunSpec;
  /** What it is about, for people: "property lifetime_value", "source purchases_table". */
  target: string;
  /** Why it runs. */
  reason: string;
  updates: DefinitionUpdate[];
}

export interface RunPlan {
  runs: PlannedRun[];
  /** Definitions that change without a Run of their own; recorded after the plan's Runs are done. */
  updates: DefinitionUpdate[];
}

export interface PlanContext {
  /** True when the source's connector has read past its start: its existing rows come only from a re-read. */
  needsReread(sourceId: string): boolean;
  /** What the Runs of an earlier plan were bringing objects to and had not recorded yet (see Unsettled). */
  unsettled?: readonly Unsettled[];
}

type AnyDefinition = Definitions[DefinitionClass][string];

/**
 * An object a planned change is changing, from the moment its Runs are planned until its definition is
 * recorded: part of the state may be built under the old definition and part under `target`. Another
 * config (an undone change, a third one) finds it cut short, and plans the object redone whole (see
 * planRuns). Once the object's removal is recorded on the way (remove, then add again), nothing of it
 * is left in the state: it is no longer redone, only added.
 */
export interface Unsettled {
  cls: DefinitionClass;
  id: string;
  /** What its Run records when done; null for its removal. */
  target: AnyDefinition | null;
  /** The last definition part of the state may be built under: a removal's, when the recorded definitions lack it (an addition cut short). */
  seen: AnyDefinition;
  /** Planned redone whole: it stays so until that Run is done, whatever the config (its state is still a mix). */
  redo: boolean;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * A destination's definition recorded before its app's identity was (DestinationDefinition.app),
 * taken to be on the app the config's definition names: a state of an earlier version is not reset
 * for it, and records it from then on.
 */
function withAppOf<D extends AnyDefinition | null>(cls: DefinitionClass, definition: D, next: AnyDefinition | undefined): D {
  if (cls === "sources" && definition !== null && next !== undefined) {
    // The same for a source recorded before what its app shapes of its rows was (SourceDefinition.reads).
    if ("reads" in (definition as SourceDefinition) || !("reads" in (next as SourceDefinition))) return definition;
    return { ...(definition as SourceDefinition), reads: (next as SourceDefinition).reads } as D;
  }
  if (cls !== "destinations" || definition === null || next === undefined) return definition;
  const before = definition as DestinationDefinition;
  const after = next as DestinationDefinition;
  if ("app" in before || !("app" in after)) return definition;
  // In definitionsOf's order: definitions are compared as JSON.
  const { modelId, type, appId, ...rest } = before;
  return { modelId, type, appId, app: after.app, ...rest } as D;
}

/**
 * A definition a Run of an earlier version records, as this version compares it with the one it plans
 * to record (`next`): without operational options, and a destination's with the app's identity.
 */
export function comparableUpdate(update: DefinitionUpdate, next: DefinitionUpdate | undefined, operational: OperationalOptions | undefined): DefinitionUpdate {
  const { cls, definition } = update;
  if (definition === null || (cls !== "sources" && cls !== "destinations")) return update;
  const plain = operational ? stripped(cls, definition as SourceDefinition | DestinationDefinition, operational) : definition;
  return { ...update, definition: withAppOf(cls, plain, next?.cls === cls && next.id === update.id ? (next.definition ?? undefined) : undefined) };
}

/** How the reason of a Run that redoes an object whose change was cut short begins. */
export const CUT_SHORT_REASON = "a change to it was cut short (its Run did not finish)";

/** The model an object belongs to (a model's is itself). */
export const modelOf = (cls: DefinitionClass, id: string, definition: AnyDefinition | undefined): string | undefined => (cls === "models" ? id : (definition as { modelId?: string } | undefined)?.modelId);

/**
 * Which objects a plan towards `next` redoes whole because a change to them was cut short: an unsettled
 * object whose target `next` does not want (an undone or another change), or one already planned
 * redone; and everything of a model cut short that way.
 */
export function cutShort(unsettled: readonly Unsettled[], next: Definitions): (cls: DefinitionClass, id: string, modelId?: string) => boolean {
  const keys = new Set(unsettled.filter((u) => u.redo || !same(withAppOf(u.cls, u.target, next[u.cls][u.id]), next[u.cls][u.id] ?? null)).map((u) => `${u.cls}:${u.id}`));
  return (cls, id, modelId) => keys.has(`${cls}:${id}`) || (modelId !== undefined && keys.has(`models:${modelId}`));
}

/**
 * The Runs that take a state built from `stored` to what `next` builds: removals first (destinations,
 * groups, properties, sources, models), then re-reads, rebuilds from stored rows, group backfills and
 * export runs. A definition that changed in a way its records cannot be updated in place (a property
 * that moved source or became unique, a source whose table, mapping or role changed) is removed and
 * added again.
 */
export function planRuns(recorded: Definitions, next: Definitions, context: PlanContext): RunPlan {
  // An object whose change was cut short is redone whole (what the state holds of it is a mix): its
  // source removed and read again, its property removed and computed again, its group evaluated again,
  // every record planned again for its destination, its model removed and built again; or removed (one
  // the recorded definitions lack is taken as it was seen last, so that it is removed).
  const redone = cutShort(context.unsettled ?? [], next);
  const stored: Definitions = { models: { ...recorded.models }, sources: { ...recorded.sources }, properties: { ...recorded.properties }, groups: { ...recorded.groups }, destinations: { ...recorded.destinations } };
  for (const u of context.unsettled ?? []) {
    if (redone(u.cls, u.id, modelOf(u.cls, u.id, u.seen)) && stored[u.cls][u.id] === undefined) (stored[u.cls] as Record<string, AnyDefinition>)[u.id] = u.seen;
  }
  // Destinations recorded before their app's identity was: recorded again with it (see withAppOf).
  const withoutApp = new Set<string>();
  for (const [id, before] of Object.entries(stored.destinations)) {
    const filled = withAppOf("destinations", before, next.destinations[id]);
    if (filled === before) continue;
    stored.destinations[id] = filled;
    withoutApp.add(id);
  }
  const withoutReads = new Set<string>();
  for (const [id, before] of Object.entries(stored.sources)) {
    const filled = withAppOf("sources", before, next.sources[id]);
    if (filled === before) continue;
    stored.sources[id] = filled;
    withoutReads.add(id);
  }
  const redo = (cls: DefinitionClass, id: string): boolean => redone(cls, id, modelOf(cls, id, next[cls][id] ?? stored[cls][id]));
  const CUT_SHORT = CUT_SHORT_REASON;
  // A model cut short (a change of it, its addition or its removal) that the config still has is
  // removed whole and built again as new: its records, rows and indexes are a mix.
  const rebuiltModels = new Set(Object.keys(next.models).filter((id) => stored.models[id] !== undefined && redone("models", id)));
  const runs: PlannedRun[] = [];
  const updates: DefinitionUpdate[] = [];
  const update = (cls: DefinitionClass, id: string): DefinitionUpdate => ({ cls, id, definition: next[cls][id] ?? null });
  const forget = (cls: DefinitionClass, id: string): DefinitionUpdate => ({ cls, id, definition: null });
  const run = (spec: RunSpec, target: string, reason: string, runUpdates: DefinitionUpdate[]) => runs.push({ spec, target, reason, updates: runUpdates });

  const removedModels = new Set([...Object.keys(stored.models).filter((id) => !next.models[id]), ...rebuiltModels]);
  const keptModel = (modelId: string) => !removedModels.has(modelId);

  // Sources removed, or changed in a way that needs their rows again from scratch.
  const replacedSources = new Set<string>();
  for (const [id, before] of Object.entries(stored.sources)) {
    const after = next.sources[id];
    if (after && same(before, after) && !redo("sources", id)) continue;
    if (after) replacedSources.add(id);
  }
  // Properties removed, or changed in a way a rebuild cannot follow (another source, uniqueness, role).
  const movedBetween = (a: PropertyDefinition, b: PropertyDefinition) => a.sourceId !== b.sourceId || a.unique !== b.unique || a.modelId !== b.modelId;
  const targets = new Map((context.unsettled ?? []).map((u) => [`${u.cls}:${u.id}`, u.target]));
  const replacedProperties = new Set<string>();
  for (const [id, before] of Object.entries(stored.properties)) {
    const after = next.properties[id];
    if (!after) continue;
    // A replaced source's rows are removed and read again: what its properties hold goes with them. A
    // property cut short on its way to another source or uniqueness is removed too (its index entries
    // and values are a mix); otherwise it is computed or read again whole, without removing it first.
    const target = targets.get(`properties:${id}`) as PropertyDefinition | null | undefined;
    const moved = movedBetween(before, after) || replacedSources.has(after.sourceId) || replacedSources.has(before.sourceId) || (redo("properties", id) && target != null && movedBetween(target, after));
    if (moved) replacedProperties.add(id);
  }

  // A source of many rows per record replaced because its change was cut short: the aggregates its
  // rows built under the abandoned definitions are in the records, whether or not the state still
  // records its properties (their removal may have been recorded on the way), and taking its rows out
  // under other definitions would not undo them exactly. So the properties it has in the config are
  // removed too, then computed again.
  for (const [id, after] of Object.entries(next.properties)) {
    const source = stored.sources[after.sourceId];
    if (stored.properties[id] === undefined && replacedSources.has(after.sourceId) && source && !source.primary && redo("sources", after.sourceId)) {
      (stored.properties as Record<string, PropertyDefinition>)[id] = after;
      replacedProperties.add(id);
    }
  }
  const keptOnPrimary = new Map<string, DefinitionUpdate[]>();

  // 1. Removals.
  for (const id of Object.keys(stored.destinations)) {
    if (!next.destinations[id]) {
      run({ kind: "remove-destination", destinationId: id }, `destination ${id}`, "removed from the config", [forget("destinations", id)]);
    }
  }
  for (const [id, before] of Object.entries(stored.groups)) {
    // A group moved to another model (its id kept) leaves the records of the model it was on, as a
    // removed one does, even when that model goes too (its records are dropped whole, not counted out
    // of the group's members); its backfill (below) evaluates it over its new model's. A removed
    // group of a removed model goes with the model.
    const after = next.groups[id];
    if ((after && after.modelId === before.modelId) || (!after && !keptModel(before.modelId))) continue;
    run({ kind: "remove-group", groupId: id, modelId: before.modelId }, `group ${id}`, after ? `moved to model ${after.modelId}` : "removed from the config", [forget("groups", id)]);
  }
  for (const [id, before] of Object.entries(stored.properties)) {
    if (!keptModel(before.modelId)) continue;
    const after = next.properties[id];
    if (after && !replacedProperties.has(id)) continue;
    // Kept on a primary source replaced whole: its records are deleted with the source (which releases
    // their unique values, so the rows attached through them wait for the records to come back) and
    // built again by its re-read. Removing the property first would take the unique values the
    // release needs, and leave those rows attached to deleted records.
    // The same when the primary source is taken out and the property is kept on the source that
    // replaces it as the model's primary (a source renamed: before 2026-12-03 the property's removal
    // came first, and the other sources' rows stayed attached to the deleted records, their aggregates
    // lost for good).
    const primaryBefore = stored.sources[before.sourceId]?.primary === true;
    const sameSource = after !== undefined && after.sourceId === before.sourceId && replacedSources.has(before.sourceId);
    const toNewPrimary = after !== undefined && !next.sources[before.sourceId] && after.modelId === before.modelId && next.models[after.modelId]?.primarySourceId === after.sourceId;
    if (after && after.unique === before.unique && primaryBefore && (sameSource || toNewPrimary)) {
      // Forgotten with the source (a restart then plans the same re-read, which records them again).
      keptOnPrimary.set(before.sourceId, [...(keptOnPrimary.get(before.sourceId) ?? []), forget("properties", id)]);
      continue;
    }
    const why = !next.properties[id] ? "removed from the config" : redo("properties", id) ? `${CUT_SHORT}: removed, then computed again` : "its source, uniqueness or role changed: removed, then read again";
    run({ kind: "remove-property", propertyId: id, modelId: before.modelId, unique: before.unique }, `property ${id}`, why, [forget("properties", id)]);
  }
  for (const [id, before] of Object.entries(stored.sources)) {
    if (!keptModel(before.modelId)) continue;
    if (next.sources[id] && !replacedSources.has(id)) continue;
    const why = !next.sources[id] ? "removed from the config" : redo("sources", id) ? `${CUT_SHORT}: removed, then read again` : "its table, mapping, type or role changed: removed, then read again";
    run({ kind: "remove-source", sourceId: id, modelId: before.modelId, primary: before.primary }, `source ${id}`, why, [forget("sources", id), ...(keptOnPrimary.get(id) ?? [])]);
  }
  for (const id of removedModels) {
    const rebuilt = rebuiltModels.has(id);
    const dependents: DefinitionUpdate[] = [];
    for (const cls of ["sources", "properties", "groups"] as const) {
      for (const [depId, def] of Object.entries(stored[cls])) {
        // A source moved to another model goes too (its rows with it, read again there): before
        // 2026-12-03 its rows stayed, attached to the records the removal dropped, and its re-read on
        // the new model found them unchanged (a model renamed: every count and sum 0 for good).
        const movedSource = cls === "sources" && next.sources[depId] !== undefined && next.sources[depId].modelId !== id;
        if (def.modelId === id && (rebuilt || !next[cls][depId] || movedSource)) dependents.push(forget(cls, depId));
      }
    }
    run({ kind: "remove-model", modelId: id }, `model ${id}`, rebuilt ? `${CUT_SHORT}: removed whole, then built again as new` : "removed from the config", [forget("models", id), ...dependents]);
  }
  // From here on, a rebuilt model's sources, properties and groups are new: its removal took them all.
  // Its destinations keep what they know the remote system holds, and are planned again (below).
  const base: Definitions = { ...stored, models: { ...stored.models }, sources: { ...stored.sources }, properties: { ...stored.properties }, groups: { ...stored.groups } };
  for (const id of rebuiltModels) {
    delete base.models[id];
    for (const cls of ["sources", "properties", "groups"] as const) {
      for (const [depId, def] of Object.entries(base[cls])) if (def.modelId === id) delete (base[cls] as Record<string, unknown>)[depId];
    }
  }

  // 2. Sources read again: added (when their connector has read past their existing rows) or replaced.
  const reread = new Set<string>();
  const readWhole = new Set<string>();
  for (const [id, after] of Object.entries(next.sources)) {
    const before = base.sources[id];
    if (before && same(before, after) && !replacedSources.has(id)) continue;
    const properties = Object.entries(next.properties).filter(([, p]) => p.sourceId === id);
    const covered = [update("sources", id), ...properties.filter(([pid, p]) => !same(base.properties[pid], p) || replacedProperties.has(pid) || redo("properties", pid)).map(([pid]) => update("properties", pid))];
    if (context.needsReread(id)) {
      reread.add(id);
      if (after.primary) {
        run({ kind: "reread", sourceId: id, modelId: after.modelId }, `source ${id}`, before ? "changed: its rows are read again" : "added on a stream that is past its existing rows", covered);
      } else {
        // A source with many rows per record: read again, then every record's aggregates computed, the
        // records it has no rows for included (count and sum over no rows are 0).
        const [sourceUpdate, ...propertyUpdates] = covered;
        run({ kind: "reread", sourceId: id, modelId: after.modelId }, `source ${id}`, before ? "changed: its rows are read again" : "added on a stream that is past its existing rows", sourceUpdate ? [sourceUpdate] : []);
        if (propertyUpdates.length > 0) {
          const propertyIds = propertyUpdates.map((u) => u.id);
          run({ kind: "rebuild", sourceId: id, modelId: after.modelId, propertyIds, scan: true }, `${propertyIds.length === 1 ? "property" : "properties"} ${propertyIds.join(", ")}`, "its source was read again: every record's value computed", propertyUpdates);
        }
      }
    } else if (!after.primary && covered.length > 1) {
      // Read whole by its connector (a new slot, consumer group or watermark): its rows come as it
      // reads them, but the records it has no rows for get their properties' values over no rows only
      // from a rebuild (count and sum 0). The rebuild may go on while the rows arrive: a record a row
      // reaches first is built by it under the new definition, and kept. Before 2026-12-03 nothing was
      // planned: such records had no value at all (a source added on, or moved to, another app).
      const [sourceUpdate, ...propertyUpdates] = covered;
      readWhole.add(id);
      if (sourceUpdate) updates.push(sourceUpdate);
      const propertyIds = propertyUpdates.map((u) => u.id);
      run({ kind: "rebuild", sourceId: id, modelId: after.modelId, propertyIds, scan: true }, `${propertyIds.length === 1 ? "property" : "properties"} ${propertyIds.join(", ")}`, "its source is read whole by its connector: every record's value computed", propertyUpdates);
    } else updates.push(...covered);
  }

  // 3. Properties added or changed on sources not read again.
  const rebuilds = new Map<string, { modelId: string; propertyIds: string[] }>();
  for (const [id, after] of Object.entries(next.properties)) {
    if ((same(base.properties[id], after) && !replacedProperties.has(id) && !redo("properties", id)) || reread.has(after.sourceId) || readWhole.has(after.sourceId)) continue;
    const source = next.sources[after.sourceId];
    if (!source || !base.sources[after.sourceId] || replacedSources.has(after.sourceId)) {
      // Its source is new or replaced, and its connector reads it whole anyway (else it is read again above).
      updates.push(update("properties", id));
      continue;
    }
    if (source.primary) {
      // A primary row is kept only as its properties' values: the column is read again from the source.
      if (context.needsReread(after.sourceId)) {
        reread.add(after.sourceId);
        const properties = Object.entries(next.properties).filter(([pid, p]) => p.sourceId === after.sourceId && (!same(base.properties[pid], p) || replacedProperties.has(pid) || redo("properties", pid)));
        run({ kind: "reread", sourceId: after.sourceId, modelId: after.modelId }, `source ${after.sourceId}`, `property ${id} is new or changed: the source's rows are read again`, properties.map(([pid]) => update("properties", pid)));
      } else updates.push(update("properties", id));
      continue;
    }
    const rebuild = rebuilds.get(after.sourceId) ?? { modelId: after.modelId, propertyIds: [] };
    rebuild.propertyIds.push(id);
    rebuilds.set(after.sourceId, rebuild);
  }
  for (const [sourceId, { modelId, propertyIds }] of rebuilds) {
    run({ kind: "rebuild", sourceId, modelId, propertyIds, scan: true }, `${propertyIds.length === 1 ? "property" : "properties"} ${propertyIds.join(", ")}`, propertyIds.some((id) => redo("properties", id)) ? `${CUT_SHORT}: recomputed from the stored rows` : "new or changed: recomputed from the stored rows", propertyIds.map((id) => update("properties", id)));
  }

  // 4. Groups added or changed (or back after a removal).
  for (const [id, after] of Object.entries(next.groups)) {
    const cut = redo("groups", id);
    if (same(base.groups[id], after) && !cut) continue;
    run({ kind: "backfill", groupId: id, modelId: after.modelId }, `group ${id}`, cut ? `${CUT_SHORT}: evaluated again` : base.groups[id] ? "its rules changed" : "new", [update("groups", id)]);
  }

  // 5. Destinations added or changed: every record planned again under the new definition.
  for (const [id, after] of Object.entries(next.destinations)) {
    const before = stored.destinations[id];
    const cut = redo("destinations", id);
    if (same(before, after) && !cut) continue;
    // Cut short: every record planned again against what the destination holds (a reset would forget
    // what it holds of records since deleted, and never delete them there).
    const resetBetween = (a: DestinationDefinition, b: DestinationDefinition) => a.type !== b.type || a.appId !== b.appId || !same(a.app, b.app) || !same(a.options, b.options) || a.modelId !== b.modelId;
    // A reset cut short (another target) forgot part of what the destination holds: reset again.
    const target = withAppOf("destinations", (targets.get(`destinations:${id}`) ?? null) as DestinationDefinition | null, after);
    const reset = !before || resetBetween(before, after) || (cut && target != null && resetBetween(target, after));
    const why = cut ? `${CUT_SHORT}: every record planned again` : !before ? "new" : reset ? "its type, app (or where the app points) or options changed: every record is sent again" : "its mapping, groups, collection or sync mode changed";
    run({ kind: "export", destinationId: id, modelId: after.modelId, reset }, `destination ${id}`, why, [update("destinations", id)]);
    // Cut short, it goes first, to replace sooner what is queued under the abandoned definition (what
    // delivery sends meanwhile still goes). Not for a model built again: it would run before the
    // model's removal, and miss what that removes.
    if (cut && !rebuiltModels.has(after.modelId)) runs.unshift(runs.pop() as PlannedRun);
  }

  for (const [id, after] of Object.entries(next.models)) if (!same(base.models[id], after) || redo("models", id)) updates.push(update("models", id));
  const planned = new Set(runs.flatMap((r) => r.updates).map((u) => `${u.cls}:${u.id}`));
  for (const id of withoutApp) if (!planned.has(`destinations:${id}`)) updates.push(update("destinations", id));
  for (const id of withoutReads) if (!planned.has(`sources:${id}`) && !updates.some((u) => u.cls === "sources" && u.id === id)) updates.push(update("sources", id));
  return { runs, updates };
}

/**
 * The sources of `next` that a plan's removal Runs take something of (their rows or records, the
 * values of properties they feed in `next`, their whole model) while their connector reads them
 * whole anyway (`needsReread` false: a new slot, consumer group or watermark, a query read whole at
 * every run), with no Run of the plan reading them again: what it reads before those removals are
 * done would be removed with what they remove. They are held until then (the daemon starts their
 * connectors after the removals).
 *
 * Also, read again or not, every source of `next` whose rows or records a model's removal drops
 * whole (remove-model: a source moved from the removed model to another one, as when a model is
 * renamed, and the sources of a model removed and built again), and a source moved to another model
 * (remove-source, on the model it leaves, drops its rows as that model's): those drops take whatever the
 * source streamed meanwhile under the new config, without taking it out of the records it reached
 * (a purchase streamed to a user of the renamed model stayed in the user's count and sum, and its
 * re-read then counted it a second time), and a row of the removed model's changed meanwhile was
 * taken for one of the new model's record of the same id. Held, nothing streams into them until
 * their old rows and records are gone.
 */
export function removedThenReadWhole(plan: RunPlan, next: Definitions, needsReread: (sourceId: string) => boolean): string[] {
  const reread = new Set(plan.runs.flatMap((r) => (r.spec.kind === "reread" ? [r.spec.sourceId] : [])));
  const held = new Set<string>();
  for (const { spec, updates } of plan.runs) {
    if (spec.kind === "remove-model") {
      const dropped = [...Object.keys(next.sources).filter((id) => next.sources[id]?.modelId === spec.modelId), ...updates.filter((u) => u.cls === "sources").map((u) => u.id)];
      for (const id of dropped) if (next.sources[id]) held.add(id);
      continue;
    }
    // A source moved to another model: its removal from the old one drops its rows as the old model's.
    if (spec.kind === "remove-source" && next.sources[spec.sourceId] !== undefined && next.sources[spec.sourceId]?.modelId !== spec.modelId) {
      held.add(spec.sourceId);
      continue;
    }
    const sources = spec.kind === "remove-source" ? [spec.sourceId] : spec.kind === "remove-property" ? [next.properties[spec.propertyId]?.sourceId ?? ""] : [];
    for (const id of sources) if (next.sources[id] && !reread.has(id) && !needsReread(id)) held.add(id);
  }
  return [...held].sort();
}

/** Applies definition updates to a set of definitions (what the state records after them). */
export function applyUpdates(definitions: Definitions, updates: readonly DefinitionUpdate[]): Definitions {
  const out: Definitions = { models: { ...definitions.models }, sources: { ...definitions.sources }, properties: { ...definitions.properties }, groups: { ...definitions.groups }, destinations: { ...definitions.destinations } };
  for (const u of updates) {
    const table = out[u.cls] as Record<string, unknown>;
    if (u.definition === null) delete table[u.id];
    else table[u.id] = u.definition;
  }
  return out;
}

/**
 * Why a Run asked for by hand (`grouparoo-stream rebuild`, `POST /api/v1/runs`) no longer applies under
 * these definitions (what it is about is gone, or moved to another model or source), or undefined when
 * it still does: a restart or a reload keeps such a Run, since no config change plans it again.
 */
export function requestedRunObsolete(spec: RunSpec, next: Definitions): string | undefined {
  switch (spec.kind) {
    case "reread": {
      const source = next.sources[spec.sourceId];
      return source?.modelId === spec.modelId ? undefined : `source ${spec.sourceId} is no longer in the config (of model ${spec.modelId})`;
    }
    case "rebuild": {
      const source = next.sources[spec.sourceId];
      if (source?.modelId !== spec.modelId || source.primary) return `source ${spec.sourceId} is no longer a secondary source of model ${spec.modelId} in the config`;
      const gone = spec.propertyIds.filter((id) => next.properties[id]?.sourceId !== spec.sourceId);
      return gone.length === 0 ? undefined : `${gone.map((id) => `property ${id}`).join(", ")} no longer read from source ${spec.sourceId} in the config`;
    }
    case "backfill":
      return next.groups[spec.groupId]?.modelId === spec.modelId ? undefined : `group ${spec.groupId} is no longer in the config (of model ${spec.modelId})`;
    case "export":
      return next.destinations[spec.destinationId]?.modelId === spec.modelId ? undefined : `destination ${spec.destinationId} is no longer in the config (of model ${spec.modelId})`;
    default:
      // The remove-* Runs are planned from definitions only; none is asked for by hand.
      return `a ${spec.kind} Run is planned from the config, not asked for`;
  }
}

/**
 * What a Run asked for by hand depends on whose definition differs between the state's and the
 * config's (undefined when nothing does): its progress was made under the old one, so it starts
 * again from the beginning rather than resuming.
 */
export function requestedRunChanged(spec: RunSpec, stored: Definitions, next: Definitions): string | undefined {
  const differs = (cls: DefinitionClass, id: string) => JSON.stringify(withAppOf(cls, stored[cls][id] ?? null, next[cls][id])) !== JSON.stringify(next[cls][id] ?? null);
  const sourceChanged = (sourceId: string, propertyIds: readonly string[]) => {
    if (differs("sources", sourceId)) return `source ${sourceId}`;
    const property = propertyIds.find((id) => differs("properties", id));
    return property === undefined ? undefined : `property ${property}`;
  };
  switch (spec.kind) {
    case "reread":
      // Where it resumes is a position in the source's table; the rows it stored are raw, and a changed
      // property of the source is recomputed from them by the Run its change plans.
      return sourceChanged(spec.sourceId, []);
    case "rebuild":
      return sourceChanged(spec.sourceId, spec.propertyIds);
    case "backfill":
      return differs("groups", spec.groupId) ? `group ${spec.groupId}` : undefined;
    case "export":
      return differs("destinations", spec.destinationId) ? `destination ${spec.destinationId}` : undefined;
    default:
      return undefined;
  }
}

/**
 * Whether a planned Run does all a Run asked for by hand would: the same source read again, a rebuild
 * of the same source's properties among its own (scanned or not), the same group, or every export of
 * the same destination planned again (from scratch or not).
 */
export function runCovers(planned: RunSpec, requested: RunSpec): boolean {
  switch (requested.kind) {
    case "reread":
      return planned.kind === "reread" && planned.sourceId === requested.sourceId;
    case "rebuild":
      return planned.kind === "rebuild" && planned.sourceId === requested.sourceId && requested.propertyIds.every((id) => planned.propertyIds.includes(id));
    case "backfill":
      return planned.kind === "backfill" && planned.groupId === requested.groupId;
    case "export":
      return planned.kind === "export" && planned.destinationId === requested.destinationId;
    default:
      return JSON.stringify(planned) === JSON.stringify(requested);
  }
}
