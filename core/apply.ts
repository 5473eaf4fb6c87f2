// Applying a batch of changes to the state (the heart of the core): rows find their records by
// unique values, primary rows create and delete records, other rows feed aggregates (or wait,
// pending, for their record to appear), unique values are enforced, groups whose rules read a
// changed property are re-evaluated (enter / leave), relative-date boundaries go into the time
// index, and exports are planned per destination. The algorithm is pure over the `BatchState`
// interface; state/ implements it inside one LMDB write transaction.
import { aggregateValue, applyRowChange, emptyAggregate, type AggregateState } from "./aggregates.js";
export { applyRowChange, emptyAggregate, type AggregateState };
import { columnOf, type Change, type Row } from "./change.js";
import type { Domain, ModelDef, PropertyDef, RecordValueMap, SourceDef } from "./domain.js";
import { planExport, type ExportPlan, type RemoteState } from "./exports.js";
import { compareIds, oversizedId, oversizedRowKeyReason, oversizedUniqueReason } from "./keys.js";
import { isMember, nextBoundary, type CompiledGroup } from "./rules.js";
import { compareStrings, normalizeArray, normalizeValue, sameValue } from "./values.js";
import { TOP_LEVEL_RULE_KEYS, type PropertyValue } from "./vocabulary.js";

export const DUPLICATE_VALUE = "Duplicate Value";

export interface StoredRecord {
  id: string;
  createdAt: number;
  values: RecordValueMap;
  /** Why a property holds null although its source had a value ("Invalid integer value", "Duplicate Value"). */
  invalid: Record<string, string>;
  /**
   * Ids of the groups the record is a member of, without duplicates, sorted by UTF-16 code units (as
   * `<` compares strings, and as a model's groups are ordered). Replaced, never changed in place.
   */
  groups: string[];
  /**
   * Aggregate state of each property fed by many rows; kept with the record: one read, one write. It
   * does not grow with the rows except for exact values (see streams/aggregates.ts); the rows themselves
   * are in the row store, and the index of attached rows says which feed the record.
   */
  aggregates: Record<string, AggregateState>;
  /** The next instant each relative-date group may flip for this record (mirrors the time index). */
  boundaries: Record<string, number>;
  /** The snapshot that last read the record's primary row, if a snapshot did (its row is the record). */
  snapshot?: string;
  /** The model's aggregatesHash when the record was created (see ModelDef.aggregatesHash). */
  defs?: string;
}

export interface Identity {
  propertyId: string;
  valueKey: string;
}

export interface StoredRow {
  /** The record the row feeds, or null while it waits for a record with its identity. */
  recordId: string | null;
  /** The unique value it finds its record by (non-primary sources). */
  identity: Identity | null;
  row: Row;
  /** The snapshot that last read this row, if a snapshot did. */
  snapshot?: string;
}

export interface RowRef {
  sourceId: string;
  rowKey: string;
}

export interface DeadLetter {
  /** change: decoded but not applicable; message: not decodable by its source connector. */
  kind: "change" | "message";
  sourceId: string;
  reason: string;
  change: Change;
}

/** Everything the algorithm reads and writes; state/ implements it inside one write transaction. */
export interface BatchState {
  getRecord(modelId: string, recordId: string): StoredRecord | undefined;
  /** Ids of the model's stored records (before this batch's own writes, which are still in memory). */
  recordIdsOf(modelId: string): string[];
  putRecord(modelId: string, record: StoredRecord): void;
  deleteRecord(modelId: string, recordId: string): void;

  getUnique(modelId: string, propertyId: string, valueKey: string): string | undefined;
  setUnique(modelId: string, propertyId: string, valueKey: string, recordId: string): void;
  deleteUnique(modelId: string, propertyId: string, valueKey: string): void;

  getRow(sourceId: string, rowKey: string): StoredRow | undefined;
  /** The index of rows feeding a record: written when a row attaches, removed when it detaches. */
  attachRow(modelId: string, recordId: string, ref: RowRef): void;
  detachRow(modelId: string, recordId: string, ref: RowRef): void;
  /** The rows attached to a record (of one source, if given), in (source, row key) order. */
  attachedRows(modelId: string, recordId: string, sourceId?: string): RowRef[];
  putRow(sourceId: string, rowKey: string, row: StoredRow): void;
  deleteRow(sourceId: string, rowKey: string): void;
  rowKeysOfSource(sourceId: string): string[];

  addPending(modelId: string, identity: Identity, ref: RowRef): void;
  deletePending(modelId: string, identity: Identity, ref: RowRef): void;
  pendingRows(modelId: string, identity: Identity): RowRef[];

  /** Which unique value a record was refused (Duplicate Value), replacing what it was refused before; null: none. */
  setRefused(modelId: string, propertyId: string, recordId: string, refused: { valueKey: string; value: PropertyValue } | null): void;
  /** The record refused this value first in id order (the lowest id), with the value. */
  firstRefused(modelId: string, propertyId: string, valueKey: string): { recordId: string; value: PropertyValue } | undefined;

  /** Moves a (record, group) entry of the time index from `previous` to `next` (null: none). */
  setBoundary(modelId: string, groupId: string, recordId: string, previous: number | undefined, next: number | null): void;

  /**
   * What the destination will hold once the exports already on their way arrive: the state of an
   * export being sent, else the baseline of an unsent one (which the new export replaces), else the
   * state the destination acknowledged; null when it holds nothing.
   */
  getBaseline(destinationId: string, recordId: string): RemoteState | null;
  /** Queues plan (planned against `baseline`) in the outbox, replacing an unsent export of the same record; null drops that. */
  putExport(destinationId: string, recordId: string, plan: ExportPlan | null, baseline: RemoteState | null): void;

  deadLetter(entry: DeadLetter): void;
  setPosition(stream: string, position: string): void;
}

export interface BatchResult {
  /** Changes applied, by source id and op. */
  applied: Map<string, Map<string, number>>;
  deadLetters: number;
  /** Dead letters by source id and kind. */
  deadLettersBySource: Map<string, Map<DeadLetter["kind"], number>>;
  exports: number;
  /** Exports planned, by destination (their sum is `exports`). */
  exportsByDestination: Map<string, number>;
  /** Net change of records by model and members by group. */
  recordDelta: Map<string, number>;
  memberDelta: Map<string, number>;
  /** Records that entered and that left each group: every transition, not the net change. */
  entered: Map<string, number>;
  left: Map<string, number>;
  /** Aggregates found inconsistent with their rows (built by another definition, or a count below zero) and rebuilt from them. */
  repairs: AggregateRepair[];
  /** By source id: columns its mapping or properties read that a whole row of the batch did not have (SourceDef.columns). */
  missingColumns: Map<string, string[]>;
}

export interface AggregateRepair {
  modelId: string;
  recordId: string;
  propertyId: string;
  reason: string;
}

/** What settling a record needs of its state before the batch. */
interface PriorRecord {
  id: string;
  groups: readonly string[];
  boundaries: Record<string, number>;
}

interface Touched {
  model: ModelDef;
  before: PriorRecord | null;
  current: StoredRecord | null;
  /** The properties whose values changed (few: an array, not a set). */
  changed: string[];
  /** Groups to evaluate whatever changed (time-index sweeps, backfills). */
  forceGroups?: Set<string>;
  /** Deleted and created again within the batch: evaluated like a new record. */
  recreated: boolean;
  /** Aggregate state, boundaries, invalid reasons or the snapshot changed: the record must be written. */
  dirty: boolean;
  commitTime: number;
}

// A number's or boolean's String() is its JSON text (finite numbers: normalised values are), without the call.
const valueKey = (value: PropertyValue): string => (typeof value === "string" ? value : typeof value === "number" || typeof value === "boolean" ? String(value) : JSON.stringify(value));

/**
 * The key a unique property's value is indexed by, from a value as a person writes it (a lookup by
 * email, by id): normalised as the property's type normalises source values; null with the reason
 * when the text is not a valid value of the type.
 */
export function uniqueValueKey(type: PropertyDef["type"], raw: string): { key: string } | { invalid: string } {
  const normalized = normalizeValue(type, raw);
  if (normalized.value === null) return { invalid: normalized.invalidReason ?? `no ${type} value` };
  const key = valueKey(normalized.value);
  const bytes = oversizedId(key);
  return bytes === undefined ? { key } : { invalid: oversizedUniqueReason(bytes) };
}
const NO_INDEXES: readonly number[] = [];
const NO_FLAGS = new Uint8Array(0);
/** The unions of the groups reading several changed keys, per model and by the keys' bits (see groupsToEvaluate), and how many a model keeps. */
const MAX_READING_UNIONS = 256;
const READING_UNIONS = new WeakMap<ModelDef, Map<number, readonly number[]>>();
const NO_BOUNDARIES: Record<string, number> = Object.freeze({}) as Record<string, number>;
const hasKeys = (o: object): boolean => {
  for (const _ in o) return true;
  return false;
};

/** Applies changes (and any sweeps or backfills queued on it) through one BatchState. */
/** What a batch that changed nothing reports. */
export function emptyBatchResult(): BatchResult {
  return { applied: new Map(), deadLetters: 0, deadLettersBySource: new Map(), exports: 0, exportsByDestination: new Map(), recordDelta: new Map(), memberDelta: new Map(), entered: new Map(), left: new Map(), repairs: [], missingColumns: new Map() };
}

export class BatchApplier {
  /**
   * The records touched in this batch, by model id and record id (a record id's hash is computed once,
   * with the string it came in; a joined key would be a new string to hash on every lookup), and in the
   * order they were first touched (the order they settle in).
   */
  private readonly touched = new Map<string, Map<string, Touched>>();
  private readonly touchOrder: Touched[] = [];
  /** Membership flags of the record being settled (see membershipFlags), and whether its list named groups the model does not have. */
  private flags = new Uint8Array(64);
  private foreignIds = false;
  /** Transitions counted by group index while settling, per model: entered (0 .. n - 1), then left (n .. 2n - 1); see finish. */
  private readonly transitions = new Map<ModelDef, Int32Array>();
  /** The last position of each stream in the batch, written once at the end. */
  private readonly positions = new Map<string, string>();
  private readonly result: BatchResult = emptyBatchResult();

  constructor(
    private readonly domain: Domain,
    private readonly state: BatchState,
    private readonly now: number,
  ) {}

  /**
   * Applies a change again (a dead letter replayed by hand): like apply(), but its stream's position
   * stays where it is, since the change is older than what the stream has reached.
   */
  replay(change: Change): void {
    const stream = change.position.stream;
    const before = this.positions.get(stream);
    this.apply(change);
    if (before === undefined) this.positions.delete(stream);
    else this.positions.set(stream, before);
  }

  apply(change: Change): void {
    if (change.op === "marker") {
      this.positions.set(change.position.stream, change.position.position);
      if (change.deadLetter) this.setAside({ kind: "message", sourceId: change.sourceId, reason: change.deadLetter.reason, change });
      if (change.snapshotComplete) this.sweepSnapshot(change.snapshotComplete.snapshotId, change.snapshotComplete.sourceIds, change.commitTime);
      return;
    }
    const source = this.domain.sources.get(change.sourceId);
    // A row key the state cannot key its record or row by (LMDB's key size) is set aside, every op
    // alike: such a row was never stored, and the change stays visible and replayable.
    const keyBytes = change.op === "truncate" ? undefined : oversizedId(change.key);
    const problem = !source
      ? `no source "${change.sourceId}" in the config`
      : change.op !== "truncate" && change.key === ""
        ? "the change has no row key"
        : keyBytes !== undefined
          ? oversizedRowKeyReason(source.id, source.primary, keyBytes)
          : (change.op === "insert" || change.op === "update" || change.op === "snapshot") && !change.after
            ? `an ${change.op} without the row's new values`
            : undefined;
    if (problem || !source) {
      this.setAside({ kind: "change", sourceId: change.sourceId, reason: problem ?? "unknown source", change });
      return;
    }
    // A row moved from a key the state cannot key by (never stored): that key's delete is set aside,
    // as it is when it comes alone (a relay splits the change so), and the row is inserted.
    const movedBytes = change.movedFrom === undefined ? undefined : oversizedId(change.movedFrom);
    if (change.movedFrom !== undefined && movedBytes !== undefined) {
      const { movedFrom, ...insert } = change;
      this.setAside({ kind: "change", sourceId: source.id, reason: oversizedRowKeyReason(source.id, source.primary, movedBytes), change: { ...insert, op: "delete", key: movedFrom, after: null } });
      this.apply(insert);
      return;
    }
    this.positions.set(change.position.stream, change.position.position);
    const bySource = this.result.applied.get(source.id) ?? new Map<string, number>();
    // A Kafka tombstone deletes like any delete, and is counted apart.
    const op = change.tombstone ? "tombstone" : change.op;
    bySource.set(op, (bySource.get(op) ?? 0) + 1);
    this.result.applied.set(source.id, bySource);

    if (change.op === "truncate") {
      for (const rowKey of this.rowKeysOf(source)) this.removeRow(source, rowKey, change.commitTime);
    } else if (change.op === "delete") {
      this.removeRow(source, change.key, change.commitTime);
    } else {
      const after = change.after ?? {};
      if (change.partial !== true) this.noteMissingColumns(source, after);
      if (change.op === "insert" && change.movedFrom !== undefined && change.movedFrom !== change.key) this.moveRow(source, change.movedFrom, change.key, after, change.commitTime, change.snapshotId);
      else this.upsertRow(source, change.key, after, change.op === "update", change.commitTime, change.snapshotId, change.partial === true);
    }
  }

  /** A whole row without a column its source's properties or mapping read: told in the result (missingColumns). */
  private noteMissingColumns(source: SourceDef, row: Row): void {
    const columns = source.columns;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i] as string;
      if (Object.hasOwn(row, column)) continue;
      const missing = this.result.missingColumns.get(source.id);
      if (!missing) this.result.missingColumns.set(source.id, [column]);
      else if (!missing.includes(column)) missing.push(column);
    }
  }

  /** Removes the rows of these sources that the completed snapshot did not read. */
  private sweepSnapshot(snapshotId: string, sourceIds: readonly string[], commitTime: number): void {
    for (const sourceId of sourceIds) {
      const source = this.domain.sources.get(sourceId);
      if (!source) continue;
      for (const rowKey of this.rowKeysOf(source)) {
        if (this.snapshotOf(source, rowKey) !== snapshotId) this.removeRow(source, rowKey, commitTime);
      }
    }
  }

  /** The keys of a source's rows; a primary source's rows are its model's records. */
  private rowKeysOf(source: SourceDef): string[] {
    if (!source.primary) return this.state.rowKeysOfSource(source.id);
    const keys = new Set(this.state.recordIdsOf(source.modelId));
    for (const t of this.touched.get(source.modelId)?.values() ?? []) {
      const id = t.current?.id ?? t.before?.id;
      if (id === undefined) continue;
      if (t.current) keys.add(id);
      else keys.delete(id);
    }
    return [...keys];
  }

  private snapshotOf(source: SourceDef, rowKey: string): string | undefined {
    if (!source.primary) return this.state.getRow(source.id, rowKey)?.snapshot;
    const touched = this.touched.get(source.modelId)?.get(rowKey);
    return touched ? touched.current?.snapshot : this.state.getRecord(source.modelId, rowKey)?.snapshot;
  }

  private setAside(entry: DeadLetter): void {
    this.state.deadLetter(entry);
    this.result.deadLetters += 1;
    const bySource = this.result.deadLettersBySource.get(entry.sourceId) ?? new Map<DeadLetter["kind"], number>();
    bySource.set(entry.kind, (bySource.get(entry.kind) ?? 0) + 1);
    this.result.deadLettersBySource.set(entry.sourceId, bySource);
  }

  /** Re-evaluates one group for one record (a time-index sweep or a backfill). */
  evaluate(modelId: string, groupId: string, recordId: string): void {
    const touched = this.held(modelId, recordId);
    if (touched) (touched.forceGroups ??= new Set()).add(groupId);
  }

  /**
   * evaluate() for a record its caller has just read in this transaction (a backfill scanning the
   * records in order): the same, without reading it again.
   */
  evaluateRead(modelId: string, groupId: string, stored: StoredRecord): void {
    const model = this.domain.models.get(modelId);
    if (!model) return;
    const t = this.touch(model, stored.id, this.now, stored);
    (t.forceGroups ??= new Set()).add(groupId);
  }

  /** A stored record touched for work over the state (a sweep, a backfill, a Run); undefined when it is not held. */
  private held(modelId: string, recordId: string): Touched | undefined {
    const model = this.domain.models.get(modelId);
    if (!model) return undefined;
    const t = this.touch(model, recordId, this.now);
    return t.current ? t : undefined;
  }

  // --- Runs: work over records already held, after a definition changed -------------------------

  /** Recomputes these (non-primary) properties of one record from its stored rows; groups and exports follow. */
  rebuild(modelId: string, recordId: string, propertyIds: readonly string[]): void {
    const t = this.held(modelId, recordId);
    const record = t?.current;
    if (!t || !record) return;
    for (const propertyId of propertyIds) {
      const property = this.domain.properties.get(propertyId);
      if (!property || property.modelId !== modelId) continue;
      const source = this.domain.sources.get(property.sourceId);
      if (!source || source.primary) continue;
      const { state } = this.aggregateFromRows(modelId, recordId, source.id, property);
      record.aggregates[property.id] = state;
      t.dirty = true;
      this.setProperty(t, property, this.normalize(property, aggregateValue(property.aggregate, state)));
    }
  }

  /**
   * Sets these properties of one record from aggregate states computed over its rows elsewhere (a scan
   * of the row store); no state means no rows (count and sum 0, the others null). A record whose state
   * already carries the property's current definition was rebuilt by a change meanwhile, from rows
   * newer than the scan's: it is left as it is.
   */
  setAggregates(modelId: string, recordId: string, propertyIds: readonly string[], states: ReadonlyMap<string, AggregateState> | undefined): void {
    const t = this.held(modelId, recordId);
    const record = t?.current;
    if (!t || !record) return;
    for (const propertyId of propertyIds) {
      const property = this.domain.properties.get(propertyId);
      if (!property || property.modelId !== modelId) continue;
      const current = record.aggregates[propertyId];
      if (current?.g === property.aggregateHash) {
        // Built by this definition already (a change reached the record meanwhile): kept, its value
        // typed again (a change of the property's type alone leaves the aggregate as it was).
        this.setProperty(t, property, this.normalize(property, aggregateValue(property.aggregate, current)));
        continue;
      }
      const state = states?.get(propertyId) ?? emptyAggregate(property.aggregate);
      state.g = property.aggregateHash;
      record.aggregates[propertyId] = state;
      t.dirty = true;
      this.setProperty(t, property, this.normalize(property, aggregateValue(property.aggregate, state)));
    }
  }

  /**
   * Takes what no definition holds any more out of one record: the values, invalid reasons and aggregate
   * states of properties, and memberships (with their time-index entries) of groups; exports follow.
   */
  forget(modelId: string, recordId: string, what: { properties?: readonly string[]; groups?: readonly string[] }): void {
    const t = this.held(modelId, recordId);
    const record = t?.current;
    if (!t || !record) return;
    for (const propertyId of what.properties ?? []) {
      if (propertyId in record.values || propertyId in record.invalid || propertyId in record.aggregates) {
        if (record.invalid[propertyId] === DUPLICATE_VALUE) this.state.setRefused(modelId, propertyId, recordId, null);
        delete record.values[propertyId];
        delete record.invalid[propertyId];
        if (propertyId in record.aggregates) {
          delete record.aggregates[propertyId];
          // A missing state no longer means "no rows yet" (the property may come back under the same
          // definitions, its removal undone): a change rebuilds it from the record's rows.
          delete record.defs;
        }
        t.dirty = true;
      }
    }
    for (const groupId of what.groups ?? []) {
      if (record.groups.includes(groupId)) {
        record.groups = record.groups.filter((g) => g !== groupId);
        t.dirty = true;
      }
      const boundary = record.boundaries[groupId];
      if (boundary !== undefined) {
        this.state.setBoundary(modelId, groupId, recordId, boundary, null);
        delete record.boundaries[groupId];
        if (t.before) delete t.before.boundaries[groupId];
        t.dirty = true;
      }
    }
  }

  /**
   * Takes a stored row of a removed or replaced source out of the state (its index entries with it).
   * A source gone from the config took the properties it fed with it, so no aggregate changes; one
   * replaced (read again after this) takes its row out of its record's aggregates too.
   */
  forgetRow(modelId: string, sourceId: string, rowKey: string): void {
    const stored = this.state.getRow(sourceId, rowKey);
    if (!stored) return;
    // A source the config still has (replaced: read again after this): its row leaves the record's
    // aggregates too, so that they stay those of its attached rows whatever reached them meanwhile (a
    // change streamed under the new definition after the properties' removal, say).
    const source = this.domain.sources.get(sourceId);
    if (source && !source.primary && source.modelId === modelId) {
      this.removeRow(source, rowKey, this.now);
      return;
    }
    const ref = { sourceId, rowKey };
    if (stored.recordId) this.state.detachRow(modelId, stored.recordId, ref);
    else if (stored.identity) this.state.deletePending(modelId, stored.identity, ref);
    this.state.deleteRow(sourceId, rowKey);
  }

  /** Deletes one record as if its primary row were deleted (its source is gone). */
  deleteRecordOf(modelId: string, recordId: string): void {
    const t = this.held(modelId, recordId);
    if (t) this.deleteRecord(t);
  }

  /** Plans one destination's export of a record as it is now, against what the destination holds. */
  replan(destinationId: string, recordId: string): void {
    const destination = this.domain.destinations.get(destinationId);
    const model = destination && this.domain.models.get(destination.modelId);
    if (!destination || !model) return;
    const record = this.touched.get(model.id)?.get(recordId)?.current ?? this.state.getRecord(model.id, recordId) ?? null;
    const baseline = this.state.getBaseline(destination.id, recordId);
    const plan = planExport(destination, recordId, record ? { values: record.values, groups: record.groups } : null, baseline, this.now);
    this.state.putExport(destination.id, recordId, plan, baseline);
    if (plan) this.planned(destination.id);
  }

  private planned(destinationId: string): void {
    this.result.exports += 1;
    this.bump(this.result.exportsByDestination, destinationId, 1);
  }

  /** Evaluates groups, writes records and plans exports for everything touched. */
  finish(): BatchResult {
    for (const t of this.touchOrder) this.settle(t);
    this.touched.clear();
    this.touchOrder.length = 0;
    for (const [model, counts] of this.transitions) {
      const n = model.groups.length;
      for (let i = 0; i < n; i++) {
        const entered = counts[i] as number;
        const left = counts[n + i] as number;
        if (entered === 0 && left === 0) continue;
        const groupId = (model.groups[i] as CompiledGroup).id;
        this.bump(this.result.memberDelta, groupId, entered - left);
        if (entered > 0) this.bump(this.result.entered, groupId, entered);
        if (left > 0) this.bump(this.result.left, groupId, left);
      }
    }
    this.transitions.clear();
    for (const [stream, position] of this.positions) this.state.setPosition(stream, position);
    return this.result;
  }

  private touch(model: ModelDef, recordId: string, commitTime: number, read?: StoredRecord): Touched {
    let ofModel = this.touched.get(model.id);
    if (!ofModel) this.touched.set(model.id, (ofModel = new Map()));
    let t = ofModel.get(recordId);
    if (!t) {
      // A read returns a fresh copy, changed in place; `before` keeps what settling compares against
      // (groups are replaced, never changed in place; boundaries are changed in place, so copied).
      const stored = read ?? this.state.getRecord(model.id, recordId) ?? null;
      const before = stored ? { id: stored.id, groups: stored.groups, boundaries: hasKeys(stored.boundaries) ? { ...stored.boundaries } : NO_BOUNDARIES } : null;
      t = { model, before, current: stored, changed: [], recreated: false, dirty: false, commitTime };
      ofModel.set(recordId, t);
      this.touchOrder.push(t);
    }
    t.commitTime = Math.max(t.commitTime, commitTime);
    return t;
  }

  /**
   * A row whose key changed: the row under its old key is removed, and the row under its new key takes
   * the values the change does not carry (unchanged TOAST values) from it: the stored row of a
   * secondary source, the property values of a primary one (its record).
   */
  private moveRow(source: SourceDef, fromKey: string, rowKey: string, after: Row, commitTime: number, snapshotId?: string): void {
    const model = this.domain.models.get(source.modelId);
    if (!model) return;
    let filled = after;
    let carried: Map<string, { value: PropertyValue | PropertyValue[]; invalidReason?: string }> | undefined;
    // Nothing under the old key (the move replayed, its row already gone): the row under the new key
    // keeps the values the change does not carry, as an update's would, so a replay changes nothing.
    let replayed = false;
    if (source.primary) {
      const moved = this.touch(model, fromKey, commitTime).current;
      replayed = !moved;
      if (moved) {
        for (const property of source.properties) {
          if (!Object.hasOwn(after, property.column) || columnOf(after, property.column) !== undefined) continue;
          const reason = moved.invalid[property.id];
          carried ??= new Map();
          carried.set(property.id, reason === undefined || reason === DUPLICATE_VALUE ? { value: moved.values[property.id] ?? null } : { value: moved.values[property.id] ?? null, invalidReason: reason });
        }
      }
    } else {
      const stored = this.state.getRow(source.id, fromKey);
      replayed = !stored;
      if (stored) filled = mergeRow(stored.row, after, false);
    }
    this.removeRow(source, fromKey, commitTime);
    this.upsertRow(source, rowKey, filled, replayed, commitTime, snapshotId, false, carried);
  }

  private upsertRow(source: SourceDef, rowKey: string, after: Row, merge: boolean, commitTime: number, snapshotId?: string, partial = false, carried?: ReadonlyMap<string, { value: PropertyValue | PropertyValue[]; invalidReason?: string }>): void {
    const model = this.domain.models.get(source.modelId);
    if (!model) return;

    if (source.primary) {
      // The primary row is the record itself (no separate row to read or write). An update may leave
      // out the values of columns it did not change (unchanged TOAST values, present as undefined):
      // their properties keep their values. A column the row does not have (dropped) reads as null.
      const t = this.touch(model, rowKey, commitTime);
      const existed = t.current !== null;
      if (!t.current) {
        t.current = { id: rowKey, createdAt: commitTime, values: {}, invalid: {}, groups: [], aggregates: {}, boundaries: {}, defs: model.aggregatesHash };
        t.recreated = t.before !== null;
        // Aggregates start over no rows (count and sum 0, the others null); rows waiting for this
        // record attach when its unique values are claimed below.
        for (const property of model.properties) {
          if (property.sourceId !== source.id) this.setProperty(t, property, this.normalize(property, aggregateValue(property.aggregate, emptyAggregate(property.aggregate))));
        }
      }
      const record = t.current;
      if (record.snapshot !== snapshotId) {
        if (snapshotId === undefined) delete record.snapshot;
        else record.snapshot = snapshotId;
        t.dirty = true;
      }
      for (const property of source.properties) {
        const raw = columnOf(after, property.column);
        if (raw === undefined && merge && existed && (partial || Object.hasOwn(after, property.column))) continue;
        const kept = raw === undefined ? carried?.get(property.id) : undefined;
        this.setProperty(t, property, kept ?? this.normalize(property, raw));
      }
      return;
    }

    const stored = this.state.getRow(source.id, rowKey);
    // An update may leave out values it did not change (unchanged TOAST values): keep the stored ones.
    const row = merge && stored ? mergeRow(stored.row, after, partial) : after;

    const identity = this.identityOf(source, row);
    const target = identity ? this.state.getUnique(model.id, identity.propertyId, identity.valueKey) : undefined;
    const ref: RowRef = { sourceId: source.id, rowKey };
    if (stored?.recordId && stored.recordId !== target) {
      this.contribute(model, stored.recordId, source, rowKey, stored.row, null, commitTime);
      this.detach(model, stored.recordId, ref, commitTime);
    }
    if (stored && stored.recordId === null && stored.identity) this.state.deletePending(model.id, stored.identity, ref);
    if (target) {
      this.contribute(model, target, source, rowKey, stored?.recordId === target ? stored.row : null, row, commitTime);
      if (stored?.recordId !== target) this.attach(model, target, ref, commitTime);
    } else if (identity) {
      this.state.addPending(model.id, identity, ref);
    }
    this.state.putRow(source.id, rowKey, { recordId: target ?? null, identity, row, ...(snapshotId ? { snapshot: snapshotId } : {}) });
  }

  private removeRow(source: SourceDef, rowKey: string, commitTime: number): void {
    const model = this.domain.models.get(source.modelId);
    if (!model) return;
    if (source.primary) {
      // Deleting what is not there is a no-op (replays, REPLICA IDENTITY gaps).
      this.deleteRecord(this.touch(model, rowKey, commitTime));
      return;
    }
    const stored = this.state.getRow(source.id, rowKey);
    if (!stored) return;
    if (stored.recordId) {
      this.contribute(model, stored.recordId, source, rowKey, stored.row, null, commitTime);
      this.detach(model, stored.recordId, { sourceId: source.id, rowKey }, commitTime);
    } else if (stored.identity) {
      this.state.deletePending(model.id, stored.identity, { sourceId: source.id, rowKey });
    }
    this.state.deleteRow(source.id, rowKey);
  }

  private deleteRecord(t: Touched): void {
    const record = t.current;
    if (!record) return;
    // Releasing its unique values sends the rows attached through them back to pending.
    for (const property of t.model.properties) {
      const value = record.values[property.id];
      if (property.unique && value !== undefined && value !== null && !Array.isArray(value)) this.releaseUnique(t, property, valueKey(value));
      if (property.unique && record.invalid[property.id] === DUPLICATE_VALUE) this.state.setRefused(t.model.id, property.id, record.id, null);
    }
    t.current = null;
  }

  private identityOf(source: SourceDef, row: Row): Identity | null {
    for (const entry of source.mapping) {
      const { value } = normalizeValue(entry.type, row[entry.column]);
      if (value === null) continue;
      const key = valueKey(value);
      // No record holds a value too long to index (it is invalid there): like an invalid value, it finds none.
      if (oversizedId(key) === undefined) return { propertyId: entry.propertyId, valueKey: key };
    }
    return null;
  }

  /** Moves one row's contribution in or out of a record's aggregates. */
  private contribute(model: ModelDef, recordId: string, source: SourceDef, rowKey: string, before: Row | null, after: Row | null, commitTime: number): void {
    const t = this.touch(model, recordId, commitTime);
    if (!t.current) return;
    const record = t.current;
    // The record's other rows of this source, read only when a min / max / most or least recent value
    // lost its chosen row (the changing row is still stored at its old value; the aggregate skips it).
    const others = () => this.rowsOf(model.id, recordId, source.id);
    for (const property of source.properties) {
      const spec = property.aggregate;
      let state = record.aggregates[property.id];
      let next: AggregateState;
      // No state: a record created under these definitions has no rows for it yet.
      if (state === undefined && (t.before === null || t.recreated || record.defs === model.aggregatesHash)) {
        state = emptyAggregate(spec);
        state.g = property.aggregateHash;
      }
      if (state === undefined || state.g !== property.aggregateHash) {
        // Built by another definition (or before the property existed): rebuilt from the record's rows,
        // the changing row taken as it is after the change.
        const rebuilt = this.aggregateFromRows(model.id, recordId, source.id, property, rowKey);
        next = applyRowChange(spec, rebuilt.state, rowKey, null, after, others);
        if (state !== undefined || rebuilt.rows > 0) {
          this.result.repairs.push({ modelId: model.id, recordId, propertyId: property.id, reason: state === undefined ? "no state for this definition" : "state of another definition" });
        }
      } else {
        try {
          next = applyRowChange(spec, state, rowKey, before, after, others);
        } catch (error) {
          // An inconsistency confined to this record (a count below zero): rebuilt from its rows.
          next = applyRowChange(spec, this.aggregateFromRows(model.id, recordId, source.id, property, rowKey).state, rowKey, null, after, others);
          this.result.repairs.push({ modelId: model.id, recordId, propertyId: property.id, reason: error instanceof Error ? error.message : String(error) });
        }
      }
      next.g = property.aggregateHash;
      record.aggregates[property.id] = next;
      t.dirty = true;
      this.setProperty(t, property, this.normalize(property, aggregateValue(spec, next)));
    }
  }

  /** The aggregate of one property over the record's stored rows of its source, `except` one row. */
  /** The aggregate of one property over the record's stored rows of its source, `except` one row, and how many rows it read. */
  private aggregateFromRows(modelId: string, recordId: string, sourceId: string, property: PropertyDef, except?: string): { state: AggregateState; rows: number } {
    let state = emptyAggregate(property.aggregate);
    let rows = 0;
    for (const [key, row] of this.rowsOf(modelId, recordId, sourceId)) {
      if (key === except) continue;
      state = applyRowChange(property.aggregate, state, key, null, row);
      rows += 1;
    }
    state.g = property.aggregateHash;
    return { state, rows };
  }

  private *rowsOf(modelId: string, recordId: string, sourceId: string): Generator<readonly [string, Row]> {
    for (const ref of this.state.attachedRows(modelId, recordId, sourceId)) {
      const stored = this.state.getRow(sourceId, ref.rowKey);
      if (stored) yield [ref.rowKey, stored.row];
    }
  }

  private attach(model: ModelDef, recordId: string, ref: RowRef, commitTime: number): void {
    const t = this.touch(model, recordId, commitTime);
    if (t.current) this.state.attachRow(model.id, recordId, ref);
  }

  private detach(model: ModelDef, recordId: string, ref: RowRef, commitTime: number): void {
    const t = this.touch(model, recordId, commitTime);
    if (t.current) this.state.detachRow(model.id, recordId, ref);
  }

  /** A property's value from its source's raw value (a scalar's is normalizeValue's own result, not a copy). */
  private normalize(property: PropertyDef, raw: unknown): { value: PropertyValue | PropertyValue[]; invalidReason?: string } {
    if (property.isArray) {
      const { values, invalidReasons } = normalizeArray(property.type, raw);
      return invalidReasons[0] === undefined ? { value: values } : { value: values, invalidReason: invalidReasons[0] };
    }
    return normalizeValue(property.type, raw);
  }

  private setProperty(t: Touched, property: PropertyDef, next: { value: PropertyValue | PropertyValue[]; invalidReason?: string }): void {
    const record = t.current;
    if (!record) return;
    let value = next.value;
    let reason = next.invalidReason;
    const old = record.values[property.id] ?? null;
    if (property.unique && !Array.isArray(value)) {
      let refused: { valueKey: string; value: PropertyValue } | null = null;
      const oldKey = old === null || Array.isArray(old) ? null : valueKey(old);
      const newKey = value === null ? null : valueKey(value);
      // A non-null unique value a record holds is claimed by it in the index: unchanged, nothing to check.
      if (newKey !== null && newKey !== oldKey) {
        // Too long to be a key of the unique index: invalid, like a value of the wrong type.
        const bytes = oversizedId(newKey);
        const holder = bytes === undefined ? this.state.getUnique(t.model.id, property.id, newKey) : undefined;
        if (bytes !== undefined) {
          value = null;
          reason = oversizedUniqueReason(bytes);
        } else if (holder !== undefined && holder !== record.id && !(compareIds(record.id, holder) < 0 && this.takeUnique(t, property, holder, newKey))) {
          refused = { valueKey: newKey, value };
          value = null;
          reason = DUPLICATE_VALUE;
        }
      }
      // Which value a record was refused is kept: it takes the value once its holder lets it go, as a
      // fresh read would give it (releaseUnique).
      if (refused !== null || record.invalid[property.id] === DUPLICATE_VALUE) this.state.setRefused(t.model.id, property.id, record.id, refused);
      const keptKey = value === null ? null : newKey;
      if (oldKey !== null && oldKey !== keptKey && this.state.getUnique(t.model.id, property.id, oldKey) === record.id) this.releaseUnique(t, property, oldKey);
      if (keptKey !== null && keptKey !== oldKey) this.claimUnique(t, property, keptKey);
    }
    if (!sameValue(old, value)) {
      if (!t.changed.includes(property.id)) t.changed.push(property.id);
      record.values[property.id] = value;
    } else if (!(property.id in record.values)) {
      // Every property has a value, null included, so records read the same whichever way they were built.
      record.values[property.id] = value;
      t.dirty = true;
      // A record held without it (a Run took it out to compute it again, in an earlier batch; its
      // groups and destinations still went by the old value): null is a change to them too. A new
      // record's groups and exports are all evaluated anyway.
      if (t.before !== null && !t.changed.includes(property.id)) t.changed.push(property.id);
    }
    if (record.invalid[property.id] !== reason) {
      if (reason === undefined) delete record.invalid[property.id];
      else record.invalid[property.id] = reason;
      t.dirty = true;
    }
  }

  private releaseUnique(t: Touched, property: PropertyDef, key: string): void {
    if (!t.current) return;
    this.state.deleteUnique(t.model.id, property.id, key);
    // Its rows wait first, so that the record taking the value over takes them with it.
    this.unattach(t, property, key);
    this.handOver(t, property, key);
  }

  /** The rows attached to a record through a unique value it no longer holds wait for their record again. */
  private unattach(t: Touched, property: PropertyDef, key: string): void {
    const record = t.current;
    if (!record) return;
    for (const ref of this.state.attachedRows(t.model.id, record.id)) {
      const stored = this.state.getRow(ref.sourceId, ref.rowKey);
      const source = this.domain.sources.get(ref.sourceId);
      if (!stored || !source || stored.identity?.propertyId !== property.id || stored.identity.valueKey !== key) continue;
      this.contribute(t.model, record.id, source, ref.rowKey, stored.row, null, t.commitTime);
      this.detach(t.model, record.id, ref, t.commitTime);
      this.state.addPending(t.model.id, stored.identity, ref);
      this.state.putRow(ref.sourceId, ref.rowKey, { ...stored, recordId: null });
    }
  }

  /**
   * A value a record let go of goes to the record refused it first in id order (Duplicate Value while
   * the other held it), as a fresh read of the same rows gives it: its property takes the value (and
   * with it the rows waiting on it), its groups and exports follow.
   */
  private handOver(t: Touched, property: PropertyDef, key: string): void {
    for (;;) {
      const next = this.state.firstRefused(t.model.id, property.id, key);
      if (!next) return;
      const other = next.recordId === t.current?.id ? t : this.touch(t.model, next.recordId, t.commitTime);
      if (other !== t && other.current?.invalid[property.id] === DUPLICATE_VALUE) {
        this.setProperty(other, property, { value: next.value });
        return;
      }
      // Not refused any more (the record gone, or the one letting go): no longer waiting for it.
      this.state.setRefused(t.model.id, property.id, next.recordId, null);
    }
  }

  /**
   * A unique value claimed by a record of a lower id than its holder's goes to it, whichever arrived
   * first: the lowest id holds a value several records carry, as a fresh read of the same rows in any
   * order gives it. The holder is refused it (Duplicate Value, kept among the refusals so that it takes
   * the value back when the claimant lets it go), and the rows waiting on it move with the value
   * (claimUnique). False, and the claimant is refused, when the holder does not hold it as the index says.
   */
  private takeUnique(t: Touched, property: PropertyDef, holderId: string, key: string): boolean {
    const holder = this.touch(t.model, holderId, t.commitTime);
    const held = holder.current;
    const value = held?.values[property.id];
    if (!held || value === undefined || value === null || Array.isArray(value) || valueKey(value) !== key) return false;
    this.state.deleteUnique(t.model.id, property.id, key);
    this.unattach(holder, property, key);
    this.state.setRefused(t.model.id, property.id, holderId, { valueKey: key, value });
    held.values[property.id] = null;
    if (!holder.changed.includes(property.id)) holder.changed.push(property.id);
    held.invalid[property.id] = DUPLICATE_VALUE;
    holder.dirty = true;
    return true;
  }

  private claimUnique(t: Touched, property: PropertyDef, key: string): void {
    const record = t.current;
    if (!record) return;
    this.state.setUnique(t.model.id, property.id, key, record.id);
    if (!t.model.identityProperties.has(property.id)) return; // no source's rows wait on this property
    const identity = { propertyId: property.id, valueKey: key };
    for (const ref of this.state.pendingRows(t.model.id, identity)) {
      const stored = this.state.getRow(ref.sourceId, ref.rowKey);
      const source = this.domain.sources.get(ref.sourceId);
      this.state.deletePending(t.model.id, identity, ref);
      if (!stored || !source) continue;
      this.state.putRow(ref.sourceId, ref.rowKey, { ...stored, recordId: record.id });
      this.attach(t.model, record.id, ref, t.commitTime);
      this.contribute(t.model, record.id, source, ref.rowKey, null, stored.row, t.commitTime);
    }
  }

  private settle(t: Touched): void {
    const { model } = t;
    const recordId = t.current?.id ?? t.before?.id;
    if (recordId === undefined) return;
    const record = t.current;
    const oldGroups = t.before?.groups ?? [];
    if (!record) {
      if (!t.before) return;
      this.reconcileMembership(model.id, recordId, oldGroups, []);
      for (const [groupId, instant] of Object.entries(t.before.boundaries)) this.state.setBoundary(model.id, groupId, recordId, instant, null);
      this.state.deleteRecord(model.id, recordId);
      this.bump(this.result.recordDelta, model.id, -1);
      this.planExports(t, recordId, null);
      return;
    }
    const isNew = t.before === null || t.recreated;
    if (t.before === null) this.bump(this.result.recordDelta, model.id, 1);
    // Only groups whose rules read a changed property (all of them for a new record), plus those a
    // sweep or backfill asked for, are evaluated.
    const evaluate = this.groupsToEvaluate(t, isNew);
    // The record's memberships as one flag per group of the model (its list is read once: with many
    // groups, asking the list for each would be quadratic); the list is rebuilt only if one flips.
    const flags = evaluate.length > 0 ? this.membershipFlags(model, record.groups) : NO_FLAGS;
    // When settling starts from the membership the batch found (the common case: not recreated, no
    // group forgotten), each flip is a transition, counted by the group's index; otherwise the old
    // and new lists are compared.
    const counting = record.groups === oldGroups || (t.before === null && record.groups.length === 0);
    let flipped = false;
    for (let i = 0; i < evaluate.length; i++) {
      const index = evaluate[i] as number;
      const group = model.groups[index] as CompiledGroup;
      const member = isMember(group, record.values, this.now, record.id, record.createdAt);
      if (member !== (flags[index] === 1)) {
        flags[index] = member ? 1 : 0;
        flipped = true;
        if (counting) {
          const counts = this.transitionsOf(model);
          const slot = member ? index : model.groups.length + index;
          counts[slot] = (counts[slot] as number) + 1;
        }
      }
      if (group.hasRelativeRules) {
        const next = nextBoundary(group, record.values, this.now, record.id, record.createdAt);
        const previous = t.recreated ? t.before?.boundaries[group.id] : record.boundaries[group.id];
        if (previous !== (next ?? undefined)) {
          this.state.setBoundary(model.id, group.id, record.id, previous, next);
          t.dirty = true;
        }
        if (next === null) delete record.boundaries[group.id];
        else record.boundaries[group.id] = next;
      } else if (record.boundaries[group.id] !== undefined) {
        // Its rules were relative before (the group changed since): its boundary goes with them.
        const previous = t.recreated ? t.before?.boundaries[group.id] : record.boundaries[group.id];
        this.state.setBoundary(model.id, group.id, record.id, previous, null);
        delete record.boundaries[group.id];
        t.dirty = true;
      }
    }
    if (flipped) record.groups = this.groupList(model, flags, record.groups);
    const groupsChanged = counting ? flipped : this.reconcileMembership(model.id, record.id, oldGroups, record.groups);
    if (!isNew && !t.dirty && t.changed.length === 0 && !groupsChanged) return;
    this.state.putRecord(model.id, record);
    if (isNew || t.changed.length > 0 || groupsChanged) this.planExports(t, record.id, { values: record.values, groups: record.groups });
  }

  private transitionsOf(model: ModelDef): Int32Array {
    let counts = this.transitions.get(model);
    if (!counts) this.transitions.set(model, (counts = new Int32Array(model.groups.length * 2)));
    return counts;
  }

  /**
   * One flag per group of the model, set for the groups in `ids` (a record's list, sorted as the
   * model's groups are), in a buffer reused from one record to the next.
   */
  private membershipFlags(model: ModelDef, ids: readonly string[]): Uint8Array {
    if (this.flags.length < model.groups.length) this.flags = new Uint8Array(model.groups.length * 2);
    const flags = this.flags;
    flags.fill(0, 0, model.groups.length);
    this.foreignIds = false;
    // Both are in id order: one walk (comparing short strings, no hashing of strings read from LMDB).
    // A list out of order or with duplicates (none is written so) is sorted first rather than misread.
    const sorted = isSortedIds(ids) ? ids : [...new Set(ids)].sort(compareStrings);
    const groups = model.groups;
    let index = 0;
    for (let i = 0; i < sorted.length; i++) {
      const id = sorted[i] as string;
      while (index < groups.length && (groups[index] as CompiledGroup).id < id) index += 1;
      if (index < groups.length && (groups[index] as CompiledGroup).id === id) flags[index] = 1;
      else this.foreignIds = true;
    }
    return flags;
  }

  /**
   * The sorted list of group ids the flags say (the model's groups are in id order), with any id of
   * `previous` that is not a group of the model kept (a group the config dropped is forgotten by a Run).
   */
  private groupList(model: ModelDef, flags: Uint8Array, previous: readonly string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < model.groups.length; i++) if (flags[i] === 1) out.push((model.groups[i] as CompiledGroup).id);
    if (!this.foreignIds) return out;
    for (const id of previous) if (!model.groupIndex.has(id) && !out.includes(id)) out.push(id);
    return out.sort(compareStrings);
  }

  /** Indexes (in the model's groups) of the groups to evaluate for a settling record, without duplicates. */
  private groupsToEvaluate(t: Touched, isNew: boolean): readonly number[] {
    const { model } = t;
    if (isNew) return model.allGroupIndexes;
    const forced = t.forceGroups;
    if (t.changed.length === 0 && !forced) return NO_INDEXES;
    if (t.changed.length === 1 && !forced) return model.groupsReading.get(t.changed[0] as string) ?? NO_INDEXES;
    // A change of several keys (those a record's changes in this batch changed): the same few sets
    // recur, so the union of the groups reading them is kept per model, by the keys' bits (see
    // ModelDef.readBits), up to MAX_READING_UNIONS of them.
    let memo: Map<number, readonly number[]> | undefined;
    let mask = 0;
    if (!forced && model.readBits.size > 0) {
      for (const key of t.changed) mask |= model.readBits.get(key) ?? 0;
      memo = READING_UNIONS.get(model);
      if (!memo) READING_UNIONS.set(model, (memo = new Map()));
      const known = memo.get(mask);
      if (known) return known;
    }
    const marked = new Uint8Array(model.groups.length);
    for (const key of t.changed) for (const index of model.groupsReading.get(key) ?? NO_INDEXES) marked[index] = 1;
    if (forced) model.groups.forEach((g, index) => (marked[index] ||= forced.has(g.id) ? 1 : 0));
    const out: number[] = [];
    for (let i = 0; i < marked.length; i++) if (marked[i]) out.push(i);
    if (memo && memo.size < MAX_READING_UNIONS) memo.set(mask, out);
    return out;
  }

  /** Counts the difference between two sorted group lists (membership lives in the record); true if any. */
  private reconcileMembership(modelId: string, recordId: string, before: readonly string[], after: readonly string[]): boolean {
    // Lists are replaced, never changed in place: the same list is the same membership.
    if (before === after) return false;
    // Both lists sorted (a list out of order, which none is written as, is sorted first): one walk
    // through them together finds what left and what entered.
    if (!isSortedIds(before)) before = [...new Set(before)].sort(compareStrings);
    if (!isSortedIds(after)) after = [...new Set(after)].sort(compareStrings);
    let changed = false;
    let i = 0;
    let j = 0;
    while (i < before.length || j < after.length) {
      const was = before[i];
      const is = after[j];
      if (is === undefined || (was !== undefined && was < is)) {
        changed = true;
        this.bump(this.result.memberDelta, was as string, -1);
        this.bump(this.result.left, was as string, 1);
        i += 1;
      } else if (was === undefined || is < was) {
        changed = true;
        this.bump(this.result.memberDelta, is, 1);
        this.bump(this.result.entered, is, 1);
        j += 1;
      } else {
        i += 1;
        j += 1;
      }
    }
    return changed;
  }

  private planExports(t: Touched, recordId: string, snapshot: { values: RecordValueMap; groups: readonly string[] } | null): void {
    for (const destination of t.model.destinations) {
      const baseline = this.state.getBaseline(destination.id, recordId);
      const plan = planExport(destination, recordId, snapshot, baseline, t.commitTime);
      this.state.putExport(destination.id, recordId, plan, baseline);
      if (plan) this.planned(destination.id);
    }
  }

  private bump(map: Map<string, number>, key: string, delta: number): void {
    map.set(key, (map.get(key) ?? 0) + delta);
  }
}

/** Whether a list of group ids is in a record's order, without duplicates. */
function isSortedIds(ids: readonly string[]): boolean {
  for (let i = 1; i < ids.length; i++) if (!((ids[i - 1] as string) < (ids[i] as string))) return false;
  return true;
}

/**
 * The row a change carries, with the stored values of its columns it left out (undefined: not sent,
 * kept). A stored column the change does not have at all is gone (dropped from the table): as a fresh
 * read of the table has it; unless the change is `partial`, whose rows leave unchanged columns out.
 */
function mergeRow(stored: Row, after: Row, partial: boolean): Row {
  if (partial) {
    const merged: Record<string, unknown> = { ...stored };
    for (const column in after) if (after[column] !== undefined) merged[column] = after[column];
    return merged;
  }
  let row: Record<string, unknown> | undefined;
  for (const column in after) {
    if (after[column] !== undefined) continue;
    row ??= { ...after };
    row[column] = stored[column];
  }
  return row ?? after;
}

/** The keys a rule can read on every record, beside properties. */
export const TOP_LEVEL_KEYS = Object.keys(TOP_LEVEL_RULE_KEYS);
