// Debezium Postgres connector configs: the keys grouparoo-stream honours (with Debezium's names and
// defaults), the values it cannot honour (errors) and the keys it ignores (warnings). Used both for
// `options.debezium` of a postgres app and by `import-debezium`.

export const SNAPSHOT_MODES = ["initial", "no_data", "never", "always", "initial_only", "when_needed"] as const;
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];

export type DebeziumValue = string | number | boolean;
export type DebeziumConfig = Readonly<Record<string, DebeziumValue>>;

/** binary.handling.mode values (Debezium's). */
export const BINARY_HANDLING_MODES = ["bytes", "base64", "base64-url-safe", "hex"] as const;
export type BinaryHandlingMode = (typeof BINARY_HANDLING_MODES)[number];

export const PUBLICATION_AUTOCREATE_MODES = ["all_tables", "filtered", "disabled"] as const;
export type PublicationAutocreateMode = (typeof PUBLICATION_AUTOCREATE_MODES)[number];

/** What a Debezium connector config means for a postgres app. */
export interface DebeziumSettings {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: boolean;
  slot: string;
  publication: string;
  publicationAutocreateMode: PublicationAutocreateMode;
  snapshot: SnapshotMode;
  tableIncludeList?: string[];
  columnExcludeList?: string[];
  heartbeatIntervalMs: number;
  heartbeatActionQuery?: string;
  /** unavailable.value.placeholder: for kafka-debezium sources reading this connector's topics. */
  unavailableValuePlaceholder?: string;
  /** binary.handling.mode: for kafka-debezium sources reading this connector's topics. */
  binaryHandlingMode?: BinaryHandlingMode;
}

export interface DebeziumIssue {
  severity: "error" | "warning";
  key: string;
  message: string;
}

/** Debezium's defaults for the keys we read. */
export const DEBEZIUM_DEFAULTS = {
  "slot.name": "debezium",
  "publication.name": "dbz_publication",
  "publication.autocreate.mode": "all_tables",
  "snapshot.mode": "initial",
  "heartbeat.interval.ms": 0,
} as const;

const CONNECTOR_CLASSES = new Set(["io.debezium.connector.postgresql.PostgresConnector", "PostgresConnector"]);

/** Keys that are part of every Kafka Connect config but mean nothing here; ignored silently. */
const CONNECT_FRAMEWORK_KEYS = new Set(["name", "tasks.max"]);

const SUPPORTED_KEYS = [
  "connector.class",
  "database.hostname",
  "database.port",
  "database.user",
  "database.password",
  "database.dbname",
  "database.sslmode",
  "slot.name",
  "publication.name",
  "publication.autocreate.mode",
  "plugin.name",
  "snapshot.mode",
  "table.include.list",
  "column.exclude.list",
  "heartbeat.interval.ms",
  "heartbeat.action.query",
  // How the connector writes values: postgres-cdc needs neither, kafka-debezium sources reading the
  // connector's topics do (their unavailableValuePlaceholder and binaryHandlingMode options).
  "unavailable.value.placeholder",
  "binary.handling.mode",
] as const;
export const DEBEZIUM_SUPPORTED_KEYS: readonly string[] = SUPPORTED_KEYS;

const list = (value: DebeziumValue): string[] =>
  String(value)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/** Reads a Debezium Postgres connector config. Never throws: problems come back as issues. */
export function readDebezium(config: DebeziumConfig): { settings: DebeziumSettings; issues: DebeziumIssue[] } {
  const issues: DebeziumIssue[] = [];
  const error = (key: string, message: string) => issues.push({ severity: "error", key, message });
  const warn = (key: string, message: string) => issues.push({ severity: "warning", key, message });
  const str = (key: string): string | undefined => (config[key] === undefined ? undefined : String(config[key]));
  const int = (key: string, min: number, max: number): number | undefined => {
    const raw = config[key];
    if (raw === undefined) return undefined;
    const n = typeof raw === "number" ? raw : /^\s*-?\d+\s*$/.test(String(raw)) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      error(key, `must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return undefined;
    }
    return n;
  };

  for (const key of Object.keys(config)) {
    if (!DEBEZIUM_SUPPORTED_KEYS.includes(key) && !CONNECT_FRAMEWORK_KEYS.has(key)) {
      warn(key, "is not supported by grouparoo-stream and is ignored");
    }
  }

  const connectorClass = str("connector.class");
  if (connectorClass !== undefined && !CONNECTOR_CLASSES.has(connectorClass)) {
    error("connector.class", `${connectorClass} is not the Debezium Postgres connector (io.debezium.connector.postgresql.PostgresConnector)`);
  }

  const plugin = str("plugin.name");
  if (plugin === undefined) {
    warn("plugin.name", "is not set (Debezium's default is decoderbufs); grouparoo-stream decodes pgoutput");
  } else if (plugin !== "pgoutput") {
    error("plugin.name", `${plugin} cannot be decoded; grouparoo-stream supports only pgoutput`);
  }

  let ssl: boolean | undefined;
  const sslmode = str("database.sslmode");
  if (sslmode !== undefined) {
    if (sslmode === "disable") ssl = false;
    else if (sslmode === "require" || sslmode === "verify-ca" || sslmode === "verify-full") ssl = true;
    else if (sslmode === "prefer" || sslmode === "allow") {
      ssl = false;
      warn("database.sslmode", `${sslmode} is treated as disable (no opportunistic TLS); set require to use TLS`);
    } else error("database.sslmode", `${sslmode} is not one of disable, allow, prefer, require, verify-ca, verify-full`);
  }

  const autocreate = str("publication.autocreate.mode") ?? DEBEZIUM_DEFAULTS["publication.autocreate.mode"];
  if (!(PUBLICATION_AUTOCREATE_MODES as readonly string[]).includes(autocreate)) {
    error("publication.autocreate.mode", `${autocreate} is not supported (supported: ${PUBLICATION_AUTOCREATE_MODES.join(", ")})`);
  }
  const snapshot = str("snapshot.mode") ?? DEBEZIUM_DEFAULTS["snapshot.mode"];
  if (!(SNAPSHOT_MODES as readonly string[]).includes(snapshot)) {
    error("snapshot.mode", `${snapshot} is not supported (supported: ${SNAPSHOT_MODES.join(", ")})`);
  }
  const slot = str("slot.name") ?? DEBEZIUM_DEFAULTS["slot.name"];
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) error("slot.name", `${slot} is not a valid replication slot name (lower-case letters, digits, _; at most 63)`);
  const publication = str("publication.name") ?? DEBEZIUM_DEFAULTS["publication.name"];
  if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(publication)) error("publication.name", `${publication} is not a valid publication name`);

  const checkRegexList = (key: string): string[] | undefined => {
    const raw = config[key];
    if (raw === undefined) return undefined;
    const items = list(raw);
    for (const item of items) {
      try {
        new RegExp(`^${item}$`);
      } catch {
        error(key, `${JSON.stringify(item)} is not a valid regular expression`);
      }
    }
    return items;
  };

  const settings: DebeziumSettings = {
    slot,
    publication,
    publicationAutocreateMode: autocreate as PublicationAutocreateMode,
    snapshot: (snapshot === "never" ? "no_data" : snapshot) as SnapshotMode,
    heartbeatIntervalMs: int("heartbeat.interval.ms", 0, 2_147_483_647) ?? DEBEZIUM_DEFAULTS["heartbeat.interval.ms"],
  };
  const assign = <K extends keyof DebeziumSettings>(key: K, value: DebeziumSettings[K] | undefined) => {
    if (value !== undefined) settings[key] = value;
  };
  assign("host", str("database.hostname"));
  assign("port", int("database.port", 1, 65535));
  assign("user", str("database.user"));
  assign("password", str("database.password"));
  assign("database", str("database.dbname"));
  assign("ssl", ssl);
  assign("tableIncludeList", checkRegexList("table.include.list"));
  assign("columnExcludeList", checkRegexList("column.exclude.list"));
  assign("heartbeatActionQuery", str("heartbeat.action.query"));
  const placeholder = str("unavailable.value.placeholder");
  if (placeholder === "") error("unavailable.value.placeholder", "must not be empty");
  else assign("unavailableValuePlaceholder", placeholder);
  const binary = str("binary.handling.mode");
  if (binary !== undefined && !(BINARY_HANDLING_MODES as readonly string[]).includes(binary)) {
    error("binary.handling.mode", `${binary} is not one of ${BINARY_HANDLING_MODES.join(", ")}`);
  } else assign("binaryHandlingMode", binary as BinaryHandlingMode | undefined);
  return { settings, issues };
}

/** Whether `schema.table` is captured under a Debezium table.include.list (regexes, whole-name match). */
export function tableIncluded(includeList: readonly string[] | undefined, qualifiedTable: string): boolean {
  if (!includeList) return true;
  return includeList.some((pattern) => new RegExp(`^${pattern}$`).test(qualifiedTable));
}

/** `table` or `schema.table` → `schema.table` (public by default). */
export function qualifyTable(table: string): string {
  return table.includes(".") ? table : `public.${table}`;
}
