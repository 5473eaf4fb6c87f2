// The relay's events (README, "Relay and workers"): a Debezium envelope without schema ({before, after,
// source, op, ts_ms}; op c, u, d, r, t, or m for a marker) as JSON, keyed by the record's primary key,
// with what the worker needs to rebuild the exact change in headers: its source, the row's own key, the
// snapshot, and which columns held values JSON cannot carry. Those are written as Debezium writes them
// (a timestamp as epoch milliseconds, bytes as base64, NaN and the infinities as text) and revived, so
// a worker applies exactly the values the relay's postgres-cdc source read, as one daemon would.
import type { Change, ChangeOp, Row } from "../../core/change.js";

export const RELAY_HEADERS = {
  source: "grouparoo.source",
  key: "grouparoo.key",
  op: "grouparoo.op",
  types: "grouparoo.types",
  snapshot: "grouparoo.snapshot",
  snapshotComplete: "grouparoo.snapshot-complete",
  deadLetter: "grouparoo.dead-letter",
  /** "2": values not sent are marked (kind u); a message without it is of an earlier version (see decodeRelayEvent). */
  format: "grouparoo.format",
} as const;

/**
 * How a value JSON cannot carry was written: d = Date (epoch ms), n = a number JSON has no literal for,
 * b = bytes (base64), o = an object of a class (its fields), u = a value not sent (undefined: an
 * unchanged TOAST value, which the core keeps; left out of the JSON, as a relay of an earlier version
 * wrote it, so that version's workers keep it too).
 */
type Kind = "d" | "n" | "b" | "o" | "u";
type Kinds = Record<string, Kind>;

const DEBEZIUM_OPS: Record<ChangeOp, string> = { insert: "c", update: "u", delete: "d", snapshot: "r", truncate: "t", marker: "m" };

export interface RelayMessage {
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

function kindOf(value: unknown): Kind | undefined {
  if (value instanceof Date) return "d";
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0) ? undefined : "n";
  if (Buffer.isBuffer(value)) return "b";
  if (Array.isArray(value)) {
    for (const item of value) {
      const kind = kindOf(item);
      if (kind) return kind;
    }
    return undefined;
  }
  if (value !== null && typeof value === "object") {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return "o";
  }
  return undefined;
}

function write(value: unknown, kind: Kind): unknown {
  if (kind === "u") return undefined;
  if (Array.isArray(value)) return value.map((v) => write(v, kind));
  if (value === null || value === undefined) return value;
  switch (kind) {
    case "d":
      return value instanceof Date ? (Number.isNaN(value.getTime()) ? "NaN" : value.getTime()) : value;
    case "n":
      return typeof value === "number" ? (Object.is(value, -0) ? "-0" : Number.isFinite(value) ? value : String(value)) : value;
    case "b":
      return Buffer.isBuffer(value) ? value.toString("base64") : value;
    case "o":
      return value;
  }
}

/** Objects of a class (pg's interval, ...) are no plain objects to the core: revived with a prototype of their own. */
class RelayedObject {}

function revive(value: unknown, kind: Kind): unknown {
  if (kind === "u") return undefined;
  if (Array.isArray(value)) return value.map((v) => revive(v, kind));
  if (value === null || value === undefined) return value;
  switch (kind) {
    case "d":
      return new Date(typeof value === "string" ? Number.NaN : Number(value));
    case "n":
      return typeof value === "string" ? (value === "-0" ? -0 : Number(value)) : value;
    case "b":
      return typeof value === "string" ? Buffer.from(value, "base64") : value;
    case "o":
      return typeof value === "object" && !Array.isArray(value) ? Object.assign(new RelayedObject(), value) : value;
  }
}

function encodeRow(row: Row | null): { row: Record<string, unknown> | null; kinds?: Kinds } {
  if (!row) return { row: null };
  let kinds: Kinds | undefined;
  let out: Record<string, unknown> | undefined;
  for (const [column, value] of Object.entries(row)) {
    const kind = value === undefined ? "u" : kindOf(value);
    if (!kind) continue;
    kinds ??= {};
    kinds[column] = kind;
    out ??= { ...row };
    out[column] = write(value, kind);
  }
  return kinds ? { row: out ?? row, kinds } : { row: row as Record<string, unknown> };
}

/** One change as the relay publishes it, keyed by `key` (null: the partition is given). */
export function encodeRelayEvent(change: Change, key: string | null, appId: string): RelayMessage {
  const before = encodeRow(change.before);
  const after = encodeRow(change.after);
  const headers: Record<string, string> = { [RELAY_HEADERS.source]: change.sourceId, [RELAY_HEADERS.key]: change.key, [RELAY_HEADERS.op]: change.op, [RELAY_HEADERS.format]: "2" };
  if (before.kinds || after.kinds) headers[RELAY_HEADERS.types] = JSON.stringify({ ...(before.kinds ? { before: before.kinds } : {}), ...(after.kinds ? { after: after.kinds } : {}) });
  if (change.snapshotId !== undefined) headers[RELAY_HEADERS.snapshot] = change.snapshotId;
  if (change.snapshotComplete) headers[RELAY_HEADERS.snapshotComplete] = JSON.stringify(change.snapshotComplete);
  if (change.deadLetter) headers[RELAY_HEADERS.deadLetter] = JSON.stringify(change.deadLetter);
  const envelope = {
    before: before.row,
    after: after.row,
    source: { version: "grouparoo-stream", connector: "postgresql", name: appId, ts_ms: change.commitTime, snapshot: change.op === "snapshot" ? "true" : "false", lsn: change.position.position },
    op: DEBEZIUM_OPS[change.op],
    ts_ms: Date.now(),
  };
  return { key, value: Buffer.from(JSON.stringify(envelope)), headers };
}

export type RelayDecodeResult = { ok: true; change: Omit<Change, "position"> } | { ok: false; reason: string };

const OPS = new Set<string>(["insert", "update", "delete", "snapshot", "truncate", "marker"]);

function header(headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined ? undefined : one.toString();
}

function decodeRow(row: unknown, kinds: Kinds | undefined, what: string): Row | null {
  if (row === null || row === undefined) return null;
  if (typeof row !== "object" || Array.isArray(row)) throw new Error(`${what} is not an object`);
  if (!kinds) return row as Row;
  const out: Record<string, unknown> = { ...(row as Record<string, unknown>) };
  for (const [column, kind] of Object.entries(kinds)) {
    // A value not sent is left out of the JSON (a worker of an earlier version keeps the stored value).
    if (kind === "u") out[column] = undefined;
    else if (column in out) out[column] = revive(out[column], kind);
  }
  return out;
}

/** A relay event back into the change it was (without its position, which is the message's offset). */
export function decodeRelayEvent(value: Buffer | null, headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined): RelayDecodeResult {
  try {
    const sourceId = header(headers, RELAY_HEADERS.source);
    const key = header(headers, RELAY_HEADERS.key);
    const op = header(headers, RELAY_HEADERS.op);
    if (sourceId === undefined || key === undefined || op === undefined) return { ok: false, reason: "not a relay event: the grouparoo.source, grouparoo.key or grouparoo.op header is missing" };
    if (!OPS.has(op)) return { ok: false, reason: `unknown op "${op}" in the grouparoo.op header` };
    if (!value) return { ok: false, reason: "a relay event without a value" };
    const envelope = JSON.parse(value.toString("utf8")) as { before?: unknown; after?: unknown; source?: { ts_ms?: unknown } };
    if (typeof envelope !== "object" || envelope === null) return { ok: false, reason: "the value is not a JSON object" };
    const types = header(headers, RELAY_HEADERS.types);
    const kinds = types === undefined ? {} : (JSON.parse(types) as { before?: Kinds; after?: Kinds });
    const snapshotId = header(headers, RELAY_HEADERS.snapshot);
    const complete = header(headers, RELAY_HEADERS.snapshotComplete);
    const deadLetter = header(headers, RELAY_HEADERS.deadLetter);
    const commitTime = typeof envelope.source?.ts_ms === "number" ? envelope.source.ts_ms : Date.now();
    const change: Omit<Change, "position"> = {
      sourceId,
      op: op as ChangeOp,
      key,
      before: decodeRow(envelope.before, kinds.before, "before"),
      after: decodeRow(envelope.after, kinds.after, "after"),
      commitTime,
      ...(snapshotId === undefined ? {} : { snapshotId }),
      ...(complete === undefined ? {} : { snapshotComplete: JSON.parse(complete) as Change["snapshotComplete"] }),
      ...(deadLetter === undefined ? {} : { deadLetter: JSON.parse(deadLetter) as Change["deadLetter"] }),
      // A relay of an earlier version left values not sent out of the row, unmarked: such an update's
      // missing columns keep their values, as that version's workers kept them.
      ...(op === "update" && header(headers, RELAY_HEADERS.format) === undefined ? { partial: true } : {}),
    };
    return { ok: true, change };
  } catch (error) {
    return { ok: false, reason: `the relay event cannot be decoded: ${error instanceof Error ? error.message : String(error)}` };
  }
}
