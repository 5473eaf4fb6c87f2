// Reads table definitions from a Postgres database's catalog: columns with their types, primary
// keys and single-column foreign keys. Used by `generate` and `import-debezium`.
import pg from "pg";

export interface ColumnInfo {
  name: string;
  /** The type's name in pg_type (int4, text, timestamptz, ...); for arrays the element type. */
  type: string;
  isArray: boolean;
  nullable: boolean;
}

export interface TableInfo {
  schema: string;
  name: string;
  columns: ColumnInfo[];
  primaryKey: string[];
  /** Single-column foreign keys: column → referenced schema.table and column. */
  foreignKeys: { column: string; schema: string; table: string; referencedColumn: string }[];
}

const TABLES = `
  SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   ORDER BY 1, 2`;

const COLUMNS = `
  SELECT a.attname AS name,
         CASE WHEN t.typcategory = 'A' THEN et.typname ELSE t.typname END AS type,
         t.typcategory = 'A' AS is_array,
         NOT a.attnotnull AS nullable
    FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type et ON et.oid = t.typelem
   WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
   ORDER BY a.attnum`;

const PRIMARY_KEY = `
  SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_index i
    JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
   WHERE i.indrelid = $1::regclass AND i.indisprimary
   ORDER BY k.ord`;

const FOREIGN_KEYS = `
  SELECT a.attname AS column, rn.nspname AS schema, rc.relname AS table, ra.attname AS referenced_column
    FROM pg_constraint con
    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
    JOIN pg_class rc ON rc.oid = con.confrelid
    JOIN pg_namespace rn ON rn.oid = rc.relnamespace
    JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = con.confkey[1]
   WHERE con.conrelid = $1::regclass AND con.contype = 'f' AND array_length(con.conkey, 1) = 1
   ORDER BY a.attnum`;

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
/** schema.table → "schema"."table" */
export const quoteTable = (qualified: string) => qualified.split(".").map(quoteIdent).join(".");

/** A table named that the database does not have (an input error, not an unreachable database). */
export class TableNotFoundError extends Error {
  readonly code = "TABLE_NOT_FOUND";
}

/** Lists schema.table of every ordinary or partitioned table outside the system schemas. */
export async function listTables(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(TABLES);
  return rows.map((r) => `${r.schema}.${r.name}`);
}

/** Describes one table given as schema.table (or table, in public); throws when it does not exist. */
export async function describeTable(client: pg.ClientBase, qualified: string): Promise<TableInfo> {
  const [schema, name] = qualified.includes(".") ? (qualified.split(".", 2) as [string, string]) : ["public", qualified];
  const regclass = `${quoteIdent(schema)}.${quoteIdent(name)}`;
  const exists = await client.query<{ found: string | null }>(`SELECT to_regclass($1) AS found`, [regclass]);
  if (!exists.rows[0]?.found) throw new TableNotFoundError(`table ${schema}.${name} does not exist`);
  const columns = await client.query<{ name: string; type: string; is_array: boolean; nullable: boolean }>(COLUMNS, [regclass]);
  const primaryKey = await client.query<{ name: string; type: string }>(PRIMARY_KEY, [regclass]);
  const foreignKeys = await client.query<{ column: string; schema: string; table: string; referenced_column: string }>(FOREIGN_KEYS, [regclass]);
  return {
    schema,
    name,
    columns: columns.rows.map((c) => ({ name: c.name, type: c.type, isArray: c.is_array, nullable: c.nullable })),
    primaryKey: primaryKey.rows.map((r) => r.name),
    foreignKeys: foreignKeys.rows.map((f) => ({ column: f.column, schema: f.schema, table: f.table, referencedColumn: f.referenced_column })),
  };
}

export async function withClient<T>(connection: string | pg.ClientConfig, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(typeof connection === "string" ? { connectionString: connection, connectionTimeoutMillis: 10_000 } : connection);
  // A server going away also fails the pending query; the event alone must not crash the process.
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * The primary key's columns of schema.table, with their types, in the key's own order (as declared,
 * which Debezium's keys follow too, whatever the columns' order in the table): a composite key's record
 * id joins their values in this order whichever way the row was read (snapshot, stream, re-read,
 * polling). Empty when it has none.
 */
export async function primaryKey(client: pg.ClientBase, qualified: string): Promise<{ name: string; type: string }[]> {
  const { rows } = await client.query<{ name: string; type: string }>(PRIMARY_KEY, [quoteTable(qualified)]);
  return rows;
}

/** The primary key's column names of schema.table, in key order (see primaryKey). */
export async function primaryKeyColumns(client: pg.ClientBase, qualified: string): Promise<string[]> {
  return (await primaryKey(client, qualified)).map((k) => k.name);
}
