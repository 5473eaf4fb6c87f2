// Routing a partitioned model's changes (README, "Relay and workers"): every change goes to the
// partition of the record it belongs to, keyed by that record's primary key, so one worker owns all of
// a record. A primary row's key is its record's id. Any other source finds its record by the primary
// key (validation refuses other mappings), so its row is keyed by that value, even before the record
// exists: the row waits (pending) in the partition its record will be created in, as in one daemon. A
// row whose key value changes moves: a delete goes to the old record's partition first. Deletes carry
// only the row's own key, so the relay keeps each row's route (RouteState): its only state. Truncates
// and snapshot ends go to every partition; undecodable input to the first. Pure over RouteState.
import { columnOf, type Change } from "./change.js";
import type { Domain, SourceDef } from "./domain.js";
import { oversizedId } from "./keys.js";
import { normalizeValue } from "./values.js";
import type { PropertyValue } from "./vocabulary.js";

/** Where each row of a non-primary source of a partitioned model was last sent. */
export interface RouteState {
  getRoute(sourceId: string, rowKey: string): string | undefined;
  /** `snapshotId`: the snapshot that read the row (a streamed change clears it). */
  setRoute(sourceId: string, rowKey: string, route: string, snapshotId?: string): void;
  deleteRoute(sourceId: string, rowKey: string): void;
  /** Drops a source's routes: all of them, or those a completed snapshot `except` did not read. */
  dropRoutes(sourceId: string, except?: string): void;
}

export type RelayTarget = { kind: "record"; key: string } | { kind: "every-partition" } | { kind: "first-partition" };

export interface RelayEvent {
  modelId: string;
  target: RelayTarget;
  change: Change;
}

export class RelayRoutingError extends Error {
  readonly code = "RELAY_ROUTING";
}

// The unique index's key of a value (core/apply.ts keys its unique index the same way).
const valueKey = (value: PropertyValue): string => (typeof value === "string" ? value : JSON.stringify(value));

export class RelayRouter {
  constructor(
    private readonly domain: Domain,
    /** The partitioned models. */
    private readonly models: ReadonlySet<string>,
  ) {}

  /** The partitioned model a source feeds, if any. */
  modelOf(sourceId: string): string | undefined {
    const modelId = this.domain.sources.get(sourceId)?.modelId;
    return modelId !== undefined && this.models.has(modelId) ? modelId : undefined;
  }

  /** The events one change becomes (none for a change that only moves a position). */
  route(change: Change, routes: RouteState): RelayEvent[] {
    if (change.op === "marker") return this.marker(change, routes);
    // A row whose key changed: its old key's record (perhaps another partition's) lets go of it, and
    // the new one is inserted (values the change does not carry stay unknown there: see the README).
    if (change.movedFrom !== undefined) {
      const { movedFrom, ...insert } = change;
      return [...this.route({ ...insert, op: "delete", key: movedFrom, after: null, snapshotId: undefined }, routes), ...this.route({ ...insert, before: null }, routes)];
    }
    const source = this.domain.sources.get(change.sourceId);
    const modelId = this.modelOf(change.sourceId);
    if (!source || modelId === undefined) return [];
    const event = (target: RelayTarget, c: Change = change): RelayEvent => ({ modelId, target, change: c });
    if (change.op === "truncate") {
      if (!source.primary) routes.dropRoutes(source.id);
      return [event({ kind: "every-partition" })];
    }
    if (source.primary) {
      if (change.op !== "delete") this.checkPrimaryKey(source, change);
      return [event({ kind: "record", key: change.key })];
    }
    // A row key too long to key a route by: no route is kept, and the partition that gets it sets it
    // aside (a dead letter, core/apply.ts), as one daemon does.
    if (oversizedId(change.key) !== undefined) return [event({ kind: "first-partition" })];
    const old = routes.getRoute(source.id, change.key);
    if (change.op === "delete") {
      if (old === undefined) return [];
      routes.deleteRoute(source.id, change.key);
      return [event({ kind: "record", key: old })];
    }
    const route = this.routeOfRow(source, change) ?? old ?? `${source.id}/${change.key}`;
    routes.setRoute(source.id, change.key, route, change.snapshotId);
    const events: RelayEvent[] = [];
    if (old !== undefined && old !== route) {
      // The row moves to another record: its old record's partition lets go of it first.
      const keyOnly = change.before ?? null;
      events.push(event({ kind: "record", key: old }, { ...change, op: "delete", before: keyOnly, after: null, snapshotId: undefined }));
    }
    events.push(event({ kind: "record", key: route }));
    return events;
  }

  private marker(change: Change, routes: RouteState): RelayEvent[] {
    const modelId = this.modelOf(change.sourceId);
    if (change.snapshotComplete) {
      const events: RelayEvent[] = [];
      const byModel = new Map<string, string[]>();
      for (const sourceId of change.snapshotComplete.sourceIds) {
        const model = this.modelOf(sourceId);
        if (model === undefined) continue;
        const source = this.domain.sources.get(sourceId);
        if (source && !source.primary) routes.dropRoutes(sourceId, change.snapshotComplete.snapshotId);
        byModel.set(model, [...(byModel.get(model) ?? []), sourceId]);
      }
      for (const [model, sourceIds] of byModel) {
        const first = sourceIds[0] ?? change.sourceId;
        events.push({ modelId: model, target: { kind: "every-partition" }, change: { ...change, sourceId: first, snapshotComplete: { snapshotId: change.snapshotComplete.snapshotId, sourceIds } } });
      }
      return events;
    }
    if (change.deadLetter && modelId !== undefined) return [{ modelId, target: { kind: "first-partition" }, change }];
    return [];
  }

  /** The primary key a non-primary row maps, as the record id it finds (undefined: none, or not sent). */
  private routeOfRow(source: SourceDef, change: Change): string | undefined {
    const row = change.after ?? {};
    let absent = false;
    for (const entry of source.mapping) {
      const raw = columnOf(row, entry.column);
      if (raw === undefined) absent = true;
      const { value } = normalizeValue(entry.type, raw);
      if (value !== null) return valueKey(value);
    }
    // An update that does not carry the mapped column (an unchanged TOAST value) keeps the row where it is.
    return absent && change.op === "update" ? undefined : `${source.id}/${change.key}`;
  }

  /**
   * Rows of other sources are keyed by the primary key's value; they meet their record only if its id
   * is that value (the primary source maps its table's key column).
   */
  private checkPrimaryKey(source: SourceDef, change: Change): void {
    const model = this.domain.models.get(source.modelId);
    const entry = source.mapping.find((m) => m.propertyId === model?.primaryKeyPropertyId);
    if (!entry || !change.after) return;
    const raw = change.after[entry.column];
    if (raw === undefined) return;
    const { value } = normalizeValue(entry.type, raw);
    if (value === null || valueKey(value) === change.key) return;
    throw new RelayRoutingError(
      `source "${source.id}": row ${change.key} maps column "${entry.column}" = ${JSON.stringify(valueKey(value))} to the primary key "${entry.propertyId}", which is not the row's own key: a partitioned model's primary source must map its table's primary key column`,
    );
  }
}
