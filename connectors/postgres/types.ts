// Postgres' zone-less date and timestamp values as UTC, whatever the host's time zone. node-postgres
// (and pg-logical-replication, which decodes pgoutput tuples with the same parsers) reads `date` as
// local midnight and `timestamp` as local time, so on a host with TZ=Europe/Berlin a date would land a
// day early and every timestamp an hour off, and postgres-cdc would disagree with Debezium, which maps
// both as UTC (days and microseconds since the epoch). pg's parser table is process-wide: installing
// these once, when the postgres connectors load, covers snapshots, the stream, re-reads and polling.
import pg from "pg";
import { DAY_MS, daysFromCivil, parseDateText } from "../../core/dates.js";
import { quoteTable } from "./introspect.js";

const OIDS = { date: 1082, timestamp: 1114, dateArray: 1182, timestampArray: 1115 } as const;
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

// pg's typings list only the scalar builtins' OIDs; the array OIDs are as real.
const setParser = pg.types.setTypeParser as (oid: number, parse: (text: string) => unknown) => void;
setParser(OIDS.date, parseUtc);
setParser(OIDS.timestamp, parseUtc);
setParser(OIDS.dateArray, arrayOf);
setParser(OIDS.timestampArray, arrayOf);

const BUILTIN_OIDS = 16_384;
const registered = new Set<number>();

/**
 * Types a database defines are text to pg, which knows only the builtins: an array of an enum came
 * as one string, `{happy,sad}`, and a domain over `int4` or `date` as its text. Before a table is
 * read, each array type of its columns gets a parser that splits it and reads each element as its
 * element type does (an enum's as text, a domain's as its base type's), and each domain its base
 * type's parser. pg's parser table is process-wide: snapshots, the stream and polling all use it.
 */
export async function registerTypesOf(client: pg.ClientBase, tables: readonly string[]): Promise<void> {
  if (tables.length === 0) return;
  const { rows } = await client.query<{ oid: number; array: boolean; element: number }>(
    `SELECT DISTINCT t.oid::int AS oid, t.typelem <> 0 AND t.typcategory = 'A' AS array,
            CASE WHEN t.typelem <> 0 AND t.typcategory = 'A' THEN COALESCE(NULLIF(e.typbasetype, 0), e.oid) ELSE t.typbasetype END::int AS element
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type e ON e.oid = t.typelem
      WHERE a.attrelid = ANY($1::regclass[]) AND a.attnum > 0 AND NOT a.attisdropped AND t.oid >= ${BUILTIN_OIDS}
        AND ((t.typelem <> 0 AND t.typcategory = 'A') OR t.typtype = 'd')`,
    [tables.map(quoteTable)],
  );
  for (const { oid, array, element } of rows) {
    if (registered.has(oid)) continue;
    registered.add(oid);
    // Resolved when a value is read, not now: a domain's base type may be one registered later.
    const parse = (text: string): unknown => (pg.types.getTypeParser(element, "text") as (text: string) => unknown)(text);
    setParser(oid, array ? (text) => arrays.create(text, parse).parse() : parse);
  }
}
