// Postgres' zone-less date and timestamp values as UTC, whatever the host's time zone. node-postgres
// (and pg-logical-replication, which decodes pgoutput tuples with the same parsers) reads `date` as
// local midnight and `timestamp` as local time, so on a host with TZ=Europe/Berlin a date would land a
// day early and every timestamp an hour off, and postgres-cdc would disagree with Debezium, which maps
// both as UTC (days and microseconds since the epoch). pg's parser table is process-wide: installing
// these once, when the postgres connectors load, covers snapshots, the stream, re-reads and polling.
import pg from "pg";
import { SUB_MILLISECOND } from "../../core/change.js";
import { DAY_MS, daysFromCivil, parseDateText } from "../../core/dates.js";

const OIDS = { date: 1082, timestamp: 1114, timestamptz: 1184, dateArray: 1182, timestampArray: 1115 } as const;
const BC_RE = /^(\d{4,})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?)? BC$/;

/** A zone-less date or timestamp in Postgres' ISO output as a UTC Date; ±infinity as ±Infinity, as pg does. */
export function parseUtc(text: string): Date | number | string {
  if (text === "infinity") return Infinity;
  if (text === "-infinity") return -Infinity;
  const ms = parseDateText(text);
  if (ms !== null) return new Date(ms);
  // Before the common era: year N BC is astronomical year 1 - N.
  const bc = BC_RE.exec(text);
  if (bc) {
    const days = daysFromCivil(1 - Number(bc[1]), Number(bc[2]), Number(bc[3]));
    const time = bc[4] === undefined ? 0 : ((Number(bc[4]) * 60 + Number(bc[5])) * 60 + Number(bc[6])) * 1000 + Number((bc[7] ?? "0").padEnd(3, "0").slice(0, 3));
    return new Date(days * DAY_MS + time);
  }
  // Not a form Postgres sends with DateStyle ISO: kept as text, so the value's type check names it.
  return text;
}

// pg-types 2's arrayParser is { create(text, transform) } (its typings describe a later version).
const arrays = pg.types.arrayParser as unknown as { create(text: string, transform: (entry: string) => unknown): { parse(): unknown[] } };
const arrayOf = (text: string): unknown[] => arrays.create(text, parseUtc).parse();

/** A timestamp's fraction past the millisecond: the digits after the third, up to the last non-zero one. */
const SUB_MS_RE = /:\d\d\.\d{3}(\d*[1-9])/;

/**
 * A timestamp's Date with the digits of its fraction past the millisecond kept on it (SUB_MILLISECOND),
 * when it has any: its value stays a Date of milliseconds, and a key column keeps every digit, so rows
 * a microsecond apart stay two rows (core/change.ts, rowKey). Both parsers truncate to the millisecond.
 */
function withSubMillisecond(parse: (text: string) => unknown): (text: string) => unknown {
  return (text) => {
    const value = parse(text);
    if (value instanceof Date) {
      const sub = SUB_MS_RE.exec(text);
      if (sub !== null) (value as Date & { [SUB_MILLISECOND]?: string })[SUB_MILLISECOND] = sub[1];
    }
    return value;
  };
}

// pg's typings list only the scalar builtins' OIDs; the array OIDs are as real.
const setParser = pg.types.setTypeParser as (oid: number, parse: (text: string) => unknown) => void;
setParser(OIDS.date, parseUtc);
setParser(OIDS.timestamp, withSubMillisecond(parseUtc));
setParser(OIDS.timestamptz, withSubMillisecond(pg.types.getTypeParser(OIDS.timestamptz, "text") as (text: string) => unknown));
setParser(OIDS.dateArray, arrayOf);
setParser(OIDS.timestampArray, arrayOf);

const BUILTIN_OIDS = 16_384;
/** What each type a database defines was registered as (see registerTypesOf), by OID. */
const registered = new Map<number, string>();
const asText = (text: string): string => text;

/**
 * Types a database defines are text to pg, which knows only the builtins: an array of an enum came
 * as one string, `{happy,sad}`, and a domain over `int4` or `date` as its text. Before a source reads,
 * each array of such a type in its database gets a parser that splits it and reads each element as
 * its element type does (an enum's, a composite's as text, a domain's as its builtin base type's), and
 * each domain its builtin base type's parser. pg's parser table is process-wide and keyed by OID,
 * which only one cluster gives meaning to: an OID two apps' clusters give different kinds of type is
 * read as text for both (and logged), rather than one's parser reading the other's values.
 */
export const TYPE_CONFLICT = "a type of this database has the OID of another kind of type in another app's database: both are read as text";

export async function registerTypesOf(client: pg.ClientBase, onConflict?: (oid: number) => void): Promise<void> {
  const { rows } = await client.query<{ oid: number; array: boolean; base: number }>(
    `SELECT t.oid::int AS oid, t.typelem <> 0 AND t.typcategory = 'A' AS array,
            (CASE WHEN t.typelem <> 0 AND t.typcategory = 'A' THEN COALESCE(NULLIF(e.typbasetype, 0), e.oid) ELSE t.typbasetype END)::int AS base
       FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
      WHERE t.oid >= ${BUILTIN_OIDS} AND ((t.typelem <> 0 AND t.typcategory = 'A') OR t.typtype = 'd')`,
  );
  for (const { oid, array, base } of rows) {
    // A builtin base type's parser, or text (an enum, a composite, an extension's type).
    const element = base < BUILTIN_OIDS ? base : 0;
    const kind = `${array ? "array" : "domain"} of ${element}`;
    const known = registered.get(oid);
    if (known === kind) continue;
    if (known !== undefined) {
      if (known !== "conflict") {
        registered.set(oid, "conflict");
        setParser(oid, asText);
        onConflict?.(oid);
      }
      continue;
    }
    registered.set(oid, kind);
    const parse = element === 0 ? asText : (pg.types.getTypeParser(element, "text") as (text: string) => unknown);
    setParser(oid, array ? (text) => arrays.create(text, parse).parse() : parse);
  }
}
