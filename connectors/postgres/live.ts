// Start-time checks of postgres sources and destinations against the live database (`run` before it
// starts, `validate --connect`): the app connects (credentials, database), and every table a source
// reads or a destination writes exists with the columns the config names (a source's mapping and the
// columns its properties read: value, sortColumn, filter keys) and the privileges it needs; a
// postgres-cdc source reads no generated column (pgoutput does not publish them); a query import's
// query is planned (EXPLAIN) and its result columns read from a run that returns no row. A database
// that cannot be reached is not a config error: it is reported as not permanent (the daemon starts and
// retries).
import type pg from "pg";
import type { AppConfig, DestinationConfig, PropertyConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import type { LiveCheckContext, LiveProblem } from "../types.js";
import { qualifyTable } from "./debezium.js";
import { classifyPostgresError } from "./errors.js";
import { quoteTable, withClient } from "./introspect.js";
import { resolvePostgresApp } from "./settings.js";

interface TableCheck {
  objectClass: "source" | "destination";
  id: string;
  table: string;
  columns: readonly string[];
  /** The fields of the config that name each column (`mapping.user_ref`, `options.groupsColumn`), for the messages. */
  fields?: ReadonlyMap<string, readonly string[]>;
  privileges: readonly ("SELECT" | "INSERT" | "UPDATE" | "DELETE")[];
  /** Columns the source's properties read. */
  propertyReads?: readonly PropertyRead[];
  /**
   * The source streams through pgoutput (postgres-cdc): a generated column it reads is a problem. The
   * server's server_version_num.
   */
  streamedFrom?: number;
}

/** A column one property reads, and the fields of the property that name it (`options.column`, `filters[0].key`). */
interface PropertyRead {
  propertyId: string;
  column: string;
  fields: string[];
}

/** The columns each property reads: its value, its sortColumn, its filters' keys. */
function propertyReads(properties: readonly Located<PropertyConfig>[]): PropertyRead[] {
  const reads: PropertyRead[] = [];
  for (const property of properties) {
    const named: [string, string][] = [["options.column", property.options.column]];
    if (property.options.sortColumn !== undefined) named.push(["options.sortColumn", property.options.sortColumn]);
    (property.filters ?? []).forEach((filter, i) => named.push([`filters[${i}].key`, filter.key]));
    const byColumn = new Map<string, PropertyRead>();
    for (const [field, column] of named) {
      const read = byColumn.get(column) ?? { propertyId: property.id, column, fields: [] };
      read.fields.push(field);
      byColumn.set(column, read);
    }
    reads.push(...byColumn.values());
  }
  return reads;
}

/** Each column with the fields that name it, in the config's order. */
function fieldsOf(named: readonly [string, string][]): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const [column, field] of named) fields.set(column, [...(fields.get(column) ?? []), field]);
  return fields;
}

const describeRead = (read: PropertyRead) => `property "${read.propertyId}" reads column ${read.column} (${read.fields.join(", ")})`;

/** Why a generated column read through pgoutput is refused, for this server version. */
function unpublishedReason(serverVersion: number): string {
  const major = Math.floor(serverVersion / 10_000);
  const published =
    major < 18
      ? `pgoutput does not publish generated columns before Postgres 18 (the server is Postgres ${major})`
      : `pgoutput publishes generated columns only from Postgres 18 and with the publication's publish_generated_columns = stored, which this check does not verify (the server is Postgres ${major})`;
  return `${published}, so every streamed change would leave its value null or stale; a postgres-table-import reads it`;
}

/** Connects with the app's settings and runs `check`; a connection failure becomes one problem on the app. */
async function withApp(app: Located<AppConfig>, check: (client: pg.Client) => Promise<LiveProblem[]>): Promise<LiveProblem[]> {
  let connection: pg.ClientConfig;
  try {
    connection = { ...resolvePostgresApp(app).connection, connectionTimeoutMillis: 10_000 };
    return await withClient(connection, check);
  } catch (error) {
    const { permanent, reason } = classifyPostgresError(error);
    return [{ objectClass: "app", id: app.id, permanent, message: permanent ? `cannot use the database: ${reason}` : `cannot reach the database to check it: ${reason}` }];
  }
}

async function checkTable(client: pg.Client, t: TableCheck): Promise<LiveProblem[]> {
  const problem = (message: string): LiveProblem => ({ objectClass: t.objectClass, id: t.id, permanent: true, message });
  const found = await client.query<{ found: string | null }>(`SELECT to_regclass($1)::text AS found`, [quoteTable(t.table)]);
  if (!found.rows[0]?.found) return [problem(`table ${t.table} does not exist`)];
  const problems: LiveProblem[] = [];
  // attgenerated: '' for a plain column, 's' stored, 'v' virtual (Postgres 18); none before Postgres 12.
  const generated = t.streamedFrom !== undefined && t.streamedFrom >= 120_000 ? `attgenerated <> ''` : "false";
  const { rows } = await client.query<{ name: string; generated: boolean }>(
    `SELECT attname AS name, ${generated} AS generated FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
    [quoteTable(t.table)],
  );
  const have = new Map(rows.map((r) => [r.name, r.generated]));
  const columns = [...new Set(t.columns)];
  const missing = columns.filter((c) => !have.has(c));
  const named = (column: string) => (t.fields?.get(column)?.length ? `${column} (${t.fields.get(column)?.join(", ")})` : column);
  if (missing.length > 0) problems.push(problem(`table ${t.table} has no column ${missing.map(named).join(", ")}`));
  for (const read of t.propertyReads ?? []) {
    if (!have.has(read.column)) problems.push(problem(`${describeRead(read)}, which table ${t.table} does not have`));
  }
  if (t.streamedFrom !== undefined) {
    const reason = unpublishedReason(t.streamedFrom);
    for (const column of columns.filter((c) => have.get(c) === true)) problems.push(problem(`the mapping reads column ${column}, a generated column of table ${t.table}: ${reason}`));
    for (const read of t.propertyReads ?? []) {
      if (have.get(read.column) === true) problems.push(problem(`${describeRead(read)}, a generated column of table ${t.table}: ${reason}`));
    }
  }
  for (const privilege of t.privileges) {
    const granted = await client.query<{ ok: boolean }>(`SELECT has_table_privilege($1::regclass, $2) AS ok`, [quoteTable(t.table), privilege]);
    if (granted.rows[0]?.ok !== true) problems.push(problem(`the app's user has no ${privilege} privilege on table ${t.table}`));
  }
  return problems;
}

/**
 * The columns a query import's query returns, from a run of it that returns no row (LIMIT 0 stops
 * before its first row is read), in a read-only transaction; undefined for a query that cannot be run
 * as a subquery (it was planned already: it is not checked further).
 */
async function queryColumns(client: pg.Client, query: string): Promise<string[] | undefined> {
  await client.query("BEGIN READ ONLY");
  try {
    const result = await client.query(`SELECT * FROM (\n${query.replace(/;\s*$/, "")}\n) AS returned LIMIT 0`);
    return result.fields.map((f) => f.name);
  } catch {
    return undefined;
  } finally {
    await client.query("ROLLBACK");
  }
}

/**
 * postgres-cdc, postgres-table-import and postgres-query-import sources of one app, with the columns
 * their properties read (`context`).
 */
export function checkPostgresSources(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context?: LiveCheckContext): Promise<LiveProblem[]> {
  return withApp(app, async (client) => {
    const problems: LiveProblem[] = [];
    let serverVersion: number | undefined;
    for (const source of sources) {
      const options = source.options as { table?: string; query?: string; highWatermarkColumn?: string };
      const reads = propertyReads((context?.properties ?? []).filter((p) => p.sourceId === source.id));
      if (source.type === "postgres-query-import" && options.query) {
        try {
          await client.query(`EXPLAIN ${options.query}`);
        } catch (error) {
          const { permanent, reason } = classifyPostgresError(error);
          problems.push({ objectClass: "source", id: source.id, permanent, message: `its query cannot run: ${reason}` });
          continue;
        }
        const returned = reads.length > 0 || Object.keys(source.mapping).length > 0 ? await queryColumns(client, options.query) : undefined;
        if (returned === undefined) continue;
        const have = new Set(returned);
        const problem = (message: string): LiveProblem => ({ objectClass: "source", id: source.id, permanent: true, message });
        const missing = [...new Set(Object.keys(source.mapping))].filter((c) => !have.has(c));
        if (missing.length > 0) problems.push(problem(`its query returns no column ${missing.map((c) => `${c} (mapping.${c})`).join(", ")}`));
        for (const read of reads) if (!have.has(read.column)) problems.push(problem(`${describeRead(read)}, which its query does not return`));
        continue;
      }
      if (!options.table) continue;
      const columns = [...Object.keys(source.mapping), ...(options.highWatermarkColumn ? [options.highWatermarkColumn] : [])];
      const fields = fieldsOf([...Object.keys(source.mapping).map((c): [string, string] => [c, `mapping.${c}`]), ...(options.highWatermarkColumn ? [[options.highWatermarkColumn, "options.highWatermarkColumn"] as [string, string]] : [])]);
      // pgoutput leaves generated columns out of what it streams: only postgres-cdc reads through it.
      const streamedFrom = source.type === "postgres-cdc" ? (serverVersion ??= await serverVersionOf(client)) : undefined;
      problems.push(...(await checkTable(client, { objectClass: "source", id: source.id, table: qualifyTable(options.table), columns, fields, privileges: ["SELECT"], propertyReads: reads, ...(streamedFrom === undefined ? {} : { streamedFrom }) })));
    }
    return problems;
  });
}

async function serverVersionOf(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`);
  return rows[0]?.version ?? 0;
}

/**
 * Whether `column` of `table` is an upsert's arbiter: a valid, non-deferrable unique index (a primary
 * key or unique constraint has one) of exactly that column, neither partial nor on an expression.
 * Null when the table or the column is not there (checkTable names that).
 */
async function isUniqueColumn(client: pg.Client, table: string, column: string): Promise<boolean | null> {
  const { rows } = await client.query<{ attnum: number | null; unique: boolean }>(
    `SELECT a.attnum, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid AND i.indimmediate
       AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL AND i.indexprs IS NULL) AS unique
     FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoteTable(table), column],
  );
  return rows[0] ? rows[0].unique : null;
}

/** The type of a table's groups column, and whether it takes the group names: an array of text, text itself, or JSON; undefined when it is not there (checkTable names that). */
async function groupsColumnType(client: pg.Client, table: string, column: string): Promise<{ name: string; takesNames: boolean } | undefined> {
  const { rows } = await client.query<{ name: string; takes: boolean }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS name,
            (t.typcategory = 'A' AND e.typcategory = 'S') OR t.typcategory = 'S' OR COALESCE(b.typname, t.typname) IN ('json', 'jsonb') AS takes
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
       LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
      WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoteTable(table), column],
  );
  const row = rows[0];
  return row ? { name: row.name, takesNames: row.takes } : undefined;
}

/** The columns of `table` an insert must write: NOT NULL, without a default, not an identity or generated column (which have their own). */
async function notNullWithoutDefault(client: pg.Client, table: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attnotnull AND NOT atthasdef AND attidentity = '' ORDER BY attnum`,
    [quoteTable(table)],
  );
  return rows.map((r) => r.name);
}

/**
 * A postgres-table destination: its table, mapped columns, groups column, the writes it makes, and
 * (sync, additive: it upserts ON CONFLICT (primaryKey)) a unique index of exactly its primaryKey and
 * no NOT NULL column without a default that its inserts leave out.
 * Enrich only updates WHERE primaryKey = ..., which needs none.
 */
export function checkPostgresTableDestination(destination: Located<DestinationConfig>, app: Located<AppConfig>): Promise<LiveProblem[]> {
  const options = destination.options as { table: string; primaryKey: string; groupsColumn?: string };
  const columns = [...Object.keys(destination.mapping), ...(options.groupsColumn ? [options.groupsColumn] : [])];
  const privileges = destination.syncMode === "sync" ? (["SELECT", "INSERT", "UPDATE", "DELETE"] as const) : (["SELECT", "INSERT", "UPDATE"] as const);
  const table = qualifyTable(options.table);
  return withApp(app, async (client) => {
    const fields = fieldsOf([...Object.keys(destination.mapping).map((c): [string, string] => [c, `mapping.${c}`]), ...(options.groupsColumn ? [[options.groupsColumn, "options.groupsColumn"] as [string, string]] : [])]);
    const problems = await checkTable(client, { objectClass: "destination", id: destination.id, table, columns, fields, privileges });
    // The group names are text: a groups column of another type fails every write as a data error.
    if (options.groupsColumn) {
      const type = await groupsColumnType(client, table, options.groupsColumn);
      if (type && !type.takesNames) {
        problems.push({
          objectClass: "destination",
          id: destination.id,
          permanent: true,
          message: `its groupsColumn ${options.groupsColumn} of table ${table} is of type ${type.name}, which cannot hold the group names (text): make it text[] (or varchar[], text, json, jsonb)`,
        });
      }
    }
    // Its inserts write the mapped columns (and the groups column); any other NOT NULL column without
    // a default fails every insert: each export would become a dead letter, none of them at fault.
    if (destination.syncMode !== "enrich") {
      const unwritten = (await notNullWithoutDefault(client, table)).filter((c) => !columns.includes(c));
      if (unwritten.length > 0) {
        problems.push({
          objectClass: "destination",
          id: destination.id,
          permanent: true,
          message: `table ${table} has NOT NULL column${unwritten.length > 1 ? "s" : ""} ${unwritten.join(", ")} without a default, which the mapping does not write: every insert would fail (map a property to ${unwritten.length > 1 ? "them" : "it"}, give ${unwritten.length > 1 ? "them" : "it"} a default, or drop NOT NULL)`,
        });
      }
    }
    if (destination.syncMode !== "enrich" && (await isUniqueColumn(client, table, options.primaryKey)) === false) {
      problems.push({
        objectClass: "destination",
        id: destination.id,
        permanent: true,
        message: `table ${table} has no unique constraint or unique index of exactly its primaryKey column ${options.primaryKey} (the upsert's ON CONFLICT (${options.primaryKey}) needs one)`,
      });
    }
    return problems;
  });
}
