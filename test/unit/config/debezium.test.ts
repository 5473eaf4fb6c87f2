// Reading Debezium Postgres connector configs: Debezium's defaults, what maps where, and the
// values that cannot be honoured.
import { describe, expect, it } from "vitest";
import { readDebezium, tableIncluded } from "../../../connectors/postgres/debezium.js";

describe("readDebezium", () => {
  it("applies Debezium's defaults", () => {
    const { settings, issues } = readDebezium({ "plugin.name": "pgoutput", "database.dbname": "shop" });
    expect(settings).toEqual({
      slot: "debezium",
      publication: "dbz_publication",
      publicationAutocreateMode: "all_tables",
      snapshot: "initial",
      heartbeatIntervalMs: 0,
      database: "shop",
    });
    expect(issues).toEqual([]);
  });

  it("maps the connection, TLS, lists and heartbeats", () => {
    const { settings, issues } = readDebezium({
      "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
      "database.hostname": "db.internal",
      "database.port": "6432",
      "database.user": "replicator",
      "database.password": "pw",
      "database.dbname": "shop",
      "database.sslmode": "verify-full",
      "plugin.name": "pgoutput",
      "snapshot.mode": "never",
      "table.include.list": "public.users, public\\.purchases_.*",
      "column.exclude.list": "public.users.ssn",
      "heartbeat.interval.ms": 5000,
      "heartbeat.action.query": "SELECT 1",
    });
    expect(issues).toEqual([]);
    expect(settings).toMatchObject({
      host: "db.internal",
      port: 6432,
      user: "replicator",
      password: "pw",
      database: "shop",
      ssl: true,
      snapshot: "no_data",
      tableIncludeList: ["public.users", "public\\.purchases_.*"],
      columnExcludeList: ["public.users.ssn"],
      heartbeatIntervalMs: 5000,
      heartbeatActionQuery: "SELECT 1",
    });
    expect(tableIncluded(settings.tableIncludeList, "public.purchases_2024")).toBe(true);
    expect(tableIncluded(settings.tableIncludeList, "public.users_archive")).toBe(false);
  });

  it("warns about an unset plugin.name, prefer sslmode and unknown keys; errors on what it cannot honour", () => {
    const { issues } = readDebezium({
      "connector.class": "io.debezium.connector.mysql.MySqlConnector",
      "database.sslmode": "prefer",
      "database.port": 0,
      "slot.name": "Bad-Slot",
      "table.include.list": "public.(users",
      "snapshot.locking.mode": "none",
      name: "x",
      "tasks.max": 1,
    });
    expect(issues).toEqual([
      { severity: "warning", key: "snapshot.locking.mode", message: "is not supported by grouparoo-stream and is ignored" },
      { severity: "error", key: "connector.class", message: "io.debezium.connector.mysql.MySqlConnector is not the Debezium Postgres connector (io.debezium.connector.postgresql.PostgresConnector)" },
      { severity: "warning", key: "plugin.name", message: "is not set (Debezium's default is decoderbufs); grouparoo-stream decodes pgoutput" },
      { severity: "warning", key: "database.sslmode", message: "prefer is treated as disable (no opportunistic TLS); set require to use TLS" },
      { severity: "error", key: "slot.name", message: "Bad-Slot is not a valid replication slot name (lower-case letters, digits, _; at most 63)" },
      { severity: "error", key: "database.port", message: "must be an integer from 1 to 65535 (got 0)" },
      { severity: "error", key: "table.include.list", message: '"public.(users" is not a valid regular expression' },
    ]);
  });

  it("keeps unavailable.value.placeholder and binary.handling.mode for kafka-debezium sources reading the connector's topics", () => {
    const { settings, issues } = readDebezium({ "plugin.name": "pgoutput", "unavailable.value.placeholder": "<toast>", "binary.handling.mode": "hex" });
    expect(issues).toEqual([]);
    expect(settings).toMatchObject({ unavailableValuePlaceholder: "<toast>", binaryHandlingMode: "hex" });
    expect(readDebezium({ "plugin.name": "pgoutput", "binary.handling.mode": "base32", "unavailable.value.placeholder": "" }).issues).toEqual([
      { severity: "error", key: "unavailable.value.placeholder", message: "must not be empty" },
      { severity: "error", key: "binary.handling.mode", message: "base32 is not one of bytes, base64, base64-url-safe, hex" },
    ]);
  });
});
