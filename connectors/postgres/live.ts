// Start-time checks of postgres sources and destinations against the live database (`run` before it
// starts, `validate --connect`): the app connects (credentials, database), and every table a source
// reads or a destination writes exists with the columns the config names and the privileges it needs;
// a query import's query is planned (EXPLAIN, not run). A database that cannot be reached is not a
// config error: it is reported as not permanent (the daemon starts and retries).
import type pg from "pg";
import type { AppConfig, DestinationConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import type { LiveProblem } from "../types.js";
import { qualifyTable } from "./debezium.js";
import { classifyPostgresError } from "./errors.js";
import { quoteTable, withClient } from "./introspect.js";
import { resolvePostgresApp } from "./settings.js";

interface TableCheck {
  objectClass: "source" | "destination";
  id: string;
  table: string;
  columns: readonly string[];
  privileges: readonly ("SELECT" | "INSERT" | "UPDATE" | "DELETE")[];
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
  const { rows } = await client.query<{ name: string }>(`SELECT attname AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, [quoteTable(t.table)]);
  const have = new Set(rows.map((r) => r.name));
  const missing = [...new Set(t.columns)].filter((c) => !have.has(c));
  if (missing.length > 0) problems.push(problem(`table ${t.table} has no column ${missing.join(", ")}`));
  for (const privilege of t.privileges) {
    const granted = await client.query<{ ok: boolean }>(`SELECT has_table_privilege($1::regclass, $2) AS ok`, [quoteTable(t.table), privilege]);
    if (granted.rows[0]?.ok !== true) problems.push(problem(`the app's user has no ${privilege} privilege on table ${t.table}`));
  }
  return problems;
}

/** postgres-cdc, postgres-table-import and postgres-query-import sources of one app. */
export function checkPostgresSources(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[]): Promise<LiveProblem[]> {
  return withApp(app, async (client) => {
    const problems: LiveProblem[] = [];
    for (const source of sources) {
      const options = source.options as { table?: string; query?: string; highWatermarkColumn?: string };
      if (source.type === "postgres-query-import" && options.query) {
        try {
          await client.query(`EXPLAIN ${options.query}`);
        } catch (error) {
          const { permanent, reason } = classifyPostgresError(error);
          problems.push({ objectClass: "source", id: source.id, permanent, message: `its query cannot run: ${reason}` });
        }
        continue;
      }
      if (!options.table) continue;
      const columns = [...Object.keys(source.mapping), ...(options.highWatermarkColumn ? [options.highWatermarkColumn] : [])];
      problems.push(...(await checkTable(client, { objectClass: "source", id: source.id, table: qualifyTable(options.table), columns, privileges: ["SELECT"] })));
    }
    return problems;
  });
}

/** A postgres-table destination: its table, mapped columns, groups column, and the writes it makes. */
export function checkPostgresTableDestination(destination: Located<DestinationConfig>, app: Located<AppConfig>): Promise<LiveProblem[]> {
  const options = destination.options as { table: string; groupsColumn?: string };
  const columns = [...Object.keys(destination.mapping), ...(options.groupsColumn ? [options.groupsColumn] : [])];
  const privileges = destination.syncMode === "sync" ? (["SELECT", "INSERT", "UPDATE", "DELETE"] as const) : (["SELECT", "INSERT", "UPDATE"] as const);
  return withApp(app, (client) => checkTable(client, { objectClass: "destination", id: destination.id, table: qualifyTable(options.table), columns, privileges }));
}
