// Captured tables made again under the same name: dropped and created, or a new table renamed into
// place, as online schema change tools swap tables (pg-osc). The name now stands for another table
// (another OID): a filtered publication still lists the old one (or nothing), so the new table's
// changes are not sent, and the rows it was filled with were never streamed. A table taken out of the
// publication for a while misses its changes the same way. At start and every 30 s the connector reads
// each captured name's OID and whether the publication holds it; the OIDs it last saw are kept durably
// as a position of their own stream, so a table made again while the daemon was stopped is found too.
// When one changed or left the publication, the table is added to a filtered publication again and its
// sources are read again (a Run), whose sweep removes the rows the table no longer has. A captured
// table that is gone is the app's problem (a fresh start would refuse the config).
import type pg from "pg";
import { quoteIdent, quoteTable, withClient } from "../introspect.js";
import type { PostgresAppSettings } from "../settings.js";
import type { CapturedTable } from "./slot.js";

/** The position stream holding the OIDs of an app's captured tables (a JSON object, table to OID). */
export const tablesStream = (stream: string): string => `${stream}:tables`;

/** A captured table now: its OID (null: no such table), and whether the app's publication holds it. */
export interface TableNow {
  oid: string | null;
  published: boolean;
}

/** Each captured table's OID now, and whether the publication holds it. */
export async function currentTables(settings: PostgresAppSettings, tables: readonly CapturedTable[]): Promise<Map<string, TableNow>> {
  const names = [...new Set(tables.map((t) => t.table))];
  const { rows } = await withClient(settings.connection, (client) =>
    client.query<{ t: string; oid: string | null; published: boolean }>(
      // A partitioned table is in a publication through its partitions (unless it publishes via its root).
      `SELECT t, to_regclass(q)::oid::text AS oid,
              EXISTS (SELECT 1 FROM pg_publication_tables p
                       WHERE p.pubname = $3
                         AND (p.schemaname || '.' || p.tablename = t
                              OR format('%I.%I', p.schemaname, p.tablename)::regclass IN (SELECT relid FROM pg_partition_tree(to_regclass(q))))) AS published
         FROM unnest($1::text[], $2::text[]) AS u(t, q)`,
      [names, names.map(quoteTable), settings.publication],
    ),
  );
  return new Map(rows.map((r) => [r.t, { oid: r.oid, published: r.published }]));
}

/**
 * Adds these tables to the app's publication when it is a filtered one (the daemon's own to extend) and
 * lacks them (at preparation, and when a captured table was made again); returns those added.
 */
export async function addToPublication(client: pg.Client, settings: PostgresAppSettings, tables: readonly string[]): Promise<string[]> {
  if (settings.publicationAutocreateMode !== "filtered" || tables.length === 0) return [];
  // A partitioned table is listed through its partitions when the publication does not publish via
  // its root (adding it again would fail: it is already a member).
  const { rows } = await client.query<{ t: string; published: boolean }>(
    `SELECT t, EXISTS (SELECT 1 FROM pg_publication_tables p
                        WHERE p.pubname = $3
                          AND (p.schemaname || '.' || p.tablename = t
                               OR format('%I.%I', p.schemaname, p.tablename)::regclass IN (SELECT relid FROM pg_partition_tree(to_regclass(q))))) AS published
       FROM unnest($1::text[], $2::text[]) AS u(t, q)`,
    [tables, tables.map(quoteTable), settings.publication],
  );
  const missing = rows.filter((r) => !r.published).map((r) => r.t);
  if (missing.length > 0) await client.query(`ALTER PUBLICATION ${quoteIdent(settings.publication)} ADD TABLE ${missing.map(quoteTable).join(", ")}`);
  return missing;
}

/**
 * The partitions of the captured partitioned tables, each to its captured table (schema.table). A
 * publication that does not publish via its root (publish_via_partition_root off, Postgres's
 * default) sends a partition's changes under the partition's own name.
 */
export async function partitionsOf(client: pg.ClientBase, tables: readonly string[]): Promise<Map<string, string>> {
  const { rows } = await client.query<{ leaf: string; root: string }>(
    `SELECT n.nspname || '.' || c.relname AS leaf, u.t AS root
       FROM unnest($1::text[], $2::text[]) AS u(t, q)
       JOIN LATERAL pg_partition_tree(to_regclass(u.q)) tree ON tree.relid <> to_regclass(u.q)
       JOIN pg_class c ON c.oid = tree.relid
       JOIN pg_namespace n ON n.oid = c.relnamespace`,
    [tables, tables.map(quoteTable)],
  );
  return new Map(rows.map((r) => [r.leaf, r.root]));
}

/**
 * What each column the sources read is now, keyed `schema.table#column`: its attribute number and type
 * (`3:text`), or `-` when the table has no such column. A column dropped, renamed, made again or given
 * another type changes it; rows the DDL changed send no change, so their sources are read again.
 */
export async function readColumns(settings: PostgresAppSettings, reads: readonly { table: string; column: string }[]): Promise<Map<string, string>> {
  if (reads.length === 0) return new Map();
  const { rows } = await withClient(settings.connection, (client) =>
    client.query<{ t: string; c: string; sig: string }>(
      `SELECT u.t, u.c, coalesce((SELECT a.attnum || ':' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                                   WHERE a.attrelid = to_regclass(u.q) AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped), '-') AS sig
         FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, q, c)`,
      [reads.map((r) => r.table), reads.map((r) => quoteTable(r.table)), reads.map((r) => r.column)],
    ),
  );
  return new Map(rows.map((r) => [columnKey(r.t, r.c), r.sig]));
}

/** The key of a read column in the stored record of the captured tables (beside each table's OID). */
export const columnKey = (table: string, column: string): string => `${table}#${column}`;
