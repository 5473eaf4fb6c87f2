// The postgres-cdc source type: rows of one table of a postgres app, streamed by logical replication.
// All postgres-cdc sources of one app share one connector (one slot); see source.ts.
import { Type, type Static } from "@sinclair/typebox";
import type { FieldProblem } from "../../../core/config/types.js";
import { METRICS } from "../../../metrics/names.js";
import type { SourceComponent } from "../../types.js";
import type { PostgresAppOptions } from "../app.js";
import { qualifyTable, readDebezium, tableIncluded } from "../debezium.js";
import { checkPostgresSources } from "../live.js";
import { resolvePostgresApp } from "../settings.js";
import { PostgresCdcSource } from "./source.js";

export const PostgresCdcOptions = Type.Object(
  { table: Type.String({ minLength: 1, description: "Table as schema.table, or table in public." }) },
  { additionalProperties: false },
);
type PostgresCdcOptions = Static<typeof PostgresCdcOptions>;

export const postgresCdcSource: SourceComponent = {
  type: "postgres-cdc",
  appType: "postgres",
  options: PostgresCdcOptions,
  metrics: [METRICS.replicationLagBytes, METRICS.snapshotRowsRead, METRICS.snapshotRowsEstimated],
  // Past its initial snapshot the slot streams only what changes: a table added to the app then is read
  // again (incremental snapshot). A snapshot mode that reads no rows, or reads them at every start
  // (always), needs none; initial_only does not stream, so there is nothing to read it into.
  needsReread: (_source, app, positions) => {
    const { snapshot } = resolvePostgresApp(app);
    return (snapshot === "initial" || snapshot === "when_needed") && positions.get(`postgres:${app.id}:snapshot`)?.startsWith("complete:") === true;
  },
  check(source, context) {
    const problems: FieldProblem[] = [];
    const app = context.app(source.appId);
    const debezium = (app?.options as PostgresAppOptions | undefined)?.debezium;
    const include = debezium ? readDebezium(debezium).settings.tableIncludeList : undefined;
    const table = qualifyTable((source.options as PostgresCdcOptions).table);
    if (include && !tableIncluded(include, table)) {
      problems.push({ field: ["options", "table"], message: `${table} is not captured by app "${source.appId}" (options.debezium["table.include.list"])` });
    }
    return problems;
  },
  checkLive: checkPostgresSources,
  create: (app, sources, context) => new PostgresCdcSource(app, sources, context),
};
