// `grouparoo-stream import-debezium FILE`: a Debezium Postgres connector config (the JSON posted to
// Kafka Connect, `{name, config}` or the bare config) to grouparoo-stream config files: a postgres
// app carrying the connector config under options.debezium, and sources and properties for the
// captured tables, read from the database.
import { readFileSync } from "node:fs";
import { readDebezium, tableIncluded, DEBEZIUM_SUPPORTED_KEYS, type DebeziumValue } from "../../connectors/postgres/debezium.js";
import { EX_CONFIG, EX_NOINPUT, EX_UNAVAILABLE } from "../exit-codes.js";
import { readTables, writeGenerated } from "./generate.js";

export interface ImportDebeziumOptions {
  out: string;
  appId?: string;
  databaseUrl?: string;
  force?: boolean;
}

export function parseConnectorFile(text: string): { name?: string; config: Record<string, DebeziumValue> } {
  const parsed = JSON.parse(text) as { name?: unknown; config?: unknown };
  const body = parsed.config !== undefined && typeof parsed.config === "object" && parsed.config !== null ? parsed.config : parsed;
  const config: Record<string, DebeziumValue> = {};
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") config[key] = value;
  }
  return { name: typeof parsed.name === "string" ? parsed.name : typeof config.name === "string" ? config.name : undefined, config };
}

export async function importDebeziumCommand(file: string, options: ImportDebeziumOptions): Promise<number> {
  let connector: ReturnType<typeof parseConnectorFile>;
  try {
    connector = parseConnectorFile(readFileSync(file, "utf8"));
  } catch (error) {
    process.stderr.write(`error: ${file}: ${(error as Error).message}\n`);
    return EX_CONFIG;
  }
  const { settings, issues } = readDebezium(connector.config);
  for (const issue of issues) process.stderr.write(`${issue.severity}: ${file}: ${issue.key}: ${issue.message}\n`);
  if (issues.some((i) => i.severity === "error")) return EX_CONFIG;

  const appId = options.appId ?? (connector.name ?? "postgres").replace(/[^A-Za-z0-9_.:-]/g, "_");
  // Keep the keys we honour; the password becomes an environment reference, never a literal.
  const debezium: Record<string, DebeziumValue> = {};
  for (const key of DEBEZIUM_SUPPORTED_KEYS) {
    const value = connector.config[key];
    if (value !== undefined) debezium[key] = key === "database.password" ? "${DATABASE_PASSWORD}" : value;
  }
  if (debezium["plugin.name"] === undefined) debezium["plugin.name"] = "pgoutput";

  const url =
    options.databaseUrl ??
    `postgres://${encodeURIComponent(settings.user ?? "postgres")}${settings.password ? `:${encodeURIComponent(settings.password)}` : ""}@${settings.host ?? "127.0.0.1"}:${settings.port ?? 5432}/${encodeURIComponent(settings.database ?? "postgres")}`;
  let tables;
  try {
    tables = await readTables(url, (all) => all.filter((t) => tableIncluded(settings.tableIncludeList, t)));
  } catch (error) {
    process.stderr.write(`error: reading the captured tables from ${settings.host ?? "127.0.0.1"}:${settings.port ?? 5432}/${settings.database ?? "postgres"} failed: ${(error as Error).message}\n`);
    return EX_UNAVAILABLE;
  }
  if (tables.length === 0) {
    process.stderr.write(`error: no table of the database matches table.include.list (${(settings.tableIncludeList ?? []).join(",")})\n`);
    return EX_NOINPUT;
  }
  const written = await writeGenerated(tables, { appId, appOptions: { debezium }, out: options.out, force: options.force, columnExcludeList: settings.columnExcludeList });
  // How the connector writes its topics: what a kafka-debezium source reading them must be told.
  const kafkaOptions = {
    ...(settings.unavailableValuePlaceholder === undefined ? {} : { unavailableValuePlaceholder: settings.unavailableValuePlaceholder }),
    ...(settings.binaryHandlingMode === undefined ? {} : { binaryHandlingMode: settings.binaryHandlingMode }),
  };
  if (written === 0 && Object.keys(kafkaOptions).length > 0) {
    process.stdout.write(`kafka-debezium sources reading this connector's topics need options ${JSON.stringify(kafkaOptions)} (kept in options.debezium of app ${appId})\n`);
  }
  return written;
}
