// The postgres app: a connection to one database (a URI, or the separate fields, or a Debezium
// connector config under options.debezium), shared by its sources and destinations.
import { Type, type Static } from "@sinclair/typebox";
import { literals } from "../../core/config/schema.js";
import type { FieldProblem } from "../../core/config/types.js";
import type { AppComponent } from "../types.js";
import { readDebezium, SNAPSHOT_MODES } from "./debezium.js";
import { postgresAppIdentity, resolvePostgresApp } from "./settings.js";
// Zone-less dates and timestamps read as UTC by every postgres connector (see types.ts).
import "./types.js";

/** A Postgres identifier as accepted for slot and publication names. */
const PgName = (description: string) => Type.String({ pattern: "^[a-z_][a-z0-9_]{0,62}$", description });

export const PostgresAppOptions = Type.Object(
  {
    connectionString: Type.Optional(Type.String({ description: "libpq connection URI (postgres://user:pass@host:port/db); or use the separate fields." })),
    host: Type.Optional(Type.String({ description: "Server host (127.0.0.1 when only database is given)." })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "Server port (5432 when not given)." })),
    user: Type.Optional(Type.String({ description: "User with the REPLICATION attribute (or superuser)." })),
    password: Type.Optional(Type.String({ description: "Password (use ${VAR}); never logged." })),
    database: Type.Optional(Type.String({ description: "Database name." })),
    ssl: Type.Optional(Type.Boolean({ description: "Connect with TLS.", default: false })),
    slot: Type.Optional(PgName("Logical replication slot this app reads (created if missing).")),
    publication: Type.Optional(PgName("Publication covering the app's postgres-cdc tables (created if missing).")),
    snapshot: Type.Optional(literals(SNAPSHOT_MODES, "When to read the tables before streaming (Debezium's snapshot.mode values; initial when not given).")),
    heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 0, description: "Heartbeat period in ms (0 = off) so the slot advances on a quiet database." })),
    refresh: Type.Optional(
      Type.Object(
        {
          query: Type.String({ minLength: 1, description: "A cheap query (e.g. SELECT max(updated_at) FROM users) whose result changing triggers the app's schedules at once." }),
          recurringFrequency: Type.Integer({ minimum: 100, description: "Milliseconds between two runs of the query." }),
        },
        { additionalProperties: false, description: "App Refresh Query for polling sources." },
      ),
    ),
    debezium: Type.Optional(
      Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
        description: "A Debezium Postgres connector config (database.*, slot.name, publication.name, ...) read instead of or beside the fields above.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type PostgresAppOptions = Static<typeof PostgresAppOptions>;

export const postgresApp: AppComponent = {
  type: "postgres",
  options: PostgresAppOptions,
  identity: (app) => postgresAppIdentity(app),
  // Columns column.exclude.list leaves out of a postgres-cdc source's rows: changed, its rows are read again.
  sourceReads: (app, source) => (source.type === "postgres-cdc" ? { columnExcludeList: resolvePostgresApp(app).columnExcludeList ?? [] } : undefined),
  check(app) {
    const o = app.options as PostgresAppOptions;
    const problems: FieldProblem[] = [];
    const separate = (["host", "port", "user", "password", "database"] as const).filter((k) => o[k] !== undefined);
    if (o.connectionString !== undefined && separate.length > 0) {
      problems.push({ field: ["options", "connectionString"], message: `give either connectionString or ${separate.join(", ")}, not both` });
    }
    // A URI the driver cannot parse (a port that is not a number, ...) would fail at every connect.
    if (o.connectionString !== undefined && /^postgres(ql)?:\/\//i.test(o.connectionString)) {
      try {
        const url = new URL(o.connectionString);
        if (url.port !== "" && !/^\d+$/.test(url.port)) throw new Error("the port is not a number");
      } catch (error) {
        problems.push({ field: ["options", "connectionString"], message: `is not a valid connection URI (${(error as Error).message}); expected postgres://user:password@host:port/database` });
      }
    }
    let debeziumDatabase: string | undefined;
    if (o.debezium) {
      const { settings, issues } = readDebezium(o.debezium);
      for (const issue of issues) problems.push({ field: ["options", "debezium", issue.key], message: issue.message, severity: issue.severity });
      debeziumDatabase = settings.database;
      for (const [field, key] of [["slot", "slot.name"], ["publication", "publication.name"], ["snapshot", "snapshot.mode"]] as const) {
        if (o[field] !== undefined && o.debezium[key] !== undefined && o[field] !== settings[field]) {
          problems.push({ field: ["options", field], message: `is "${o[field]}" but options.debezium["${key}"] is "${settings[field]}"; give one` });
        }
      }
    }
    if (o.connectionString === undefined && o.database === undefined && debeziumDatabase === undefined) {
      problems.push({ field: ["options"], message: "needs connectionString, or database (with host, port, user, password), or options.debezium with database.dbname" });
    }
    return problems;
  },
};
