// The normalised change every source connector produces and the core consumes: one row of one
// source, inserted, updated, deleted, read by a snapshot, or the whole source truncated.

/** A decoded source row: column name → value (numbers, strings, booleans, null, Dates, arrays, JSON). */
export type Row = Readonly<Record<string, unknown>>;

/**
 * A row's column, its own only (undefined when the row lacks it): a source's column may be named
 * `constructor` or `toString`. (Ids may not: the config refuses every name an object inherits a member
 * under, so a record's entries by id are read directly.)
 */
export function columnOf(row: Row, column: string): unknown {
  return Object.hasOwn(row, column) ? row[column] : undefined;
}

/** `marker` carries only a position (the end of a snapshot, a heartbeat): no row changes. */
export type ChangeOp = "insert" | "update" | "delete" | "truncate" | "snapshot" | "marker";
export const CHANGE_OPS: readonly ChangeOp[] = ["insert", "update", "delete", "truncate", "snapshot", "marker"];

/**
 * Where a change sits in its stream: `stream` names the stream (one replication slot, one Kafka
 * topic-partition, one polling source) and `position` is opaque to the core (an LSN, an offset, a
 * high watermark). Sources acknowledge exactly the positions the core reports as durable.
 */
export interface SourcePosition {
  readonly stream: string;
  readonly position: string;
}

export interface Change {
  readonly sourceId: string;
  readonly op: ChangeOp;
  /** The source row's own key (its primary key columns, joined), unique within the source. */
  readonly key: string;
  /** The row before the change, when the source knows it (may hold only the key columns). */
  readonly before: Row | null;
  /** The row after the change (insert, update, snapshot). */
  readonly after: Row | null;
  readonly position: SourcePosition;
  /** When the source committed the change (epoch ms); the start of end-to-end latency. */
  readonly commitTime: number;
  /**
   * On a `marker`: the input at this position could not be decoded. It is stored in the dead-letter
   * store in the same transaction that moves the position past it, so it is neither lost nor retried.
   */
  readonly deadLetter?: { readonly reason: string; readonly payload: unknown };
  /** On a `delete`: it is a Kafka tombstone (a key with a null value), counted apart in the metrics. */
  readonly tombstone?: boolean;
  /** On a `snapshot` change: the snapshot it belongs to. */
  readonly snapshotId?: string;
  /**
   * On an `update`: its row may leave out columns it did not change (Kafka's `json` format, a relay
   * message of a version before values not sent were marked), which keep their stored values. Without
   * it a row has every column the table has: one it does not have was dropped (null), and only a
   * value present as undefined (not sent: an unchanged TOAST value) is kept.
   */
  readonly partial?: boolean;
  /**
   * On a `marker`: the snapshot `snapshotId` of these sources is complete; their rows it did not read
   * (deleted while no snapshot or stream was watching) are removed.
   */
  readonly snapshotComplete?: { readonly snapshotId: string; readonly sourceIds: readonly string[] };
  /**
   * On an `insert`: the row moved here from this key (an update changed its primary key). The row
   * under that key goes first, and the values this one does not carry (present as undefined: unchanged
   * TOAST values the update did not send) are the moved row's, as a fresh read of the table has them.
   */
  readonly movedFrom?: string;
}

/**
 * A row's key as every source gives it: its key columns' values as text, joined by commas (one
 * column's value alone; no array built, as this runs for every change).
 */
export function rowKey(columns: readonly string[], row: Readonly<Record<string, unknown>>): string {
  if (columns.length === 1) return keyText(row[columns[0] as string]);
  let key = "";
  for (let i = 0; i < columns.length; i++) key += (i === 0 ? "" : ",") + keyText(row[columns[i] as string]);
  return key;
}

/**
 * On a Date read from a timestamp's text, the fraction's digits past the millisecond (trailing zeros
 * trimmed), when there are any: a Date holds milliseconds, Postgres and Debezium microseconds, and a
 * key must keep them all (connectors/postgres/types.ts sets it).
 */
export const SUB_MILLISECOND: unique symbol = Symbol("grouparoo.subMillisecond");

/**
 * A key column's value as text. A date or timestamp column's value (a Date) is its ISO-8601 text in
 * UTC, to the microsecond when it has digits past the millisecond (`2023-11-14T22:13:20.123456Z`,
 * `2023-11-14T22:13:20.123Z` otherwise). String() gave "Tue Nov 14 2023 22:13:20 GMT+0000 (...)",
 * whole seconds in the host's time zone, so rows a second apart shared a key and a restart under
 * another TZ keyed every such row anew; toISOString alone made rows a microsecond apart one row.
 */
function keyText(value: unknown): string {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) return String(value);
  const iso = value.toISOString();
  const sub = (value as Date & { [SUB_MILLISECOND]?: string })[SUB_MILLISECOND];
  return sub === undefined ? iso : `${iso.slice(0, -1)}${sub}Z`;
}
