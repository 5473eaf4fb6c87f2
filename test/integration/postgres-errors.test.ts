// Issue #12 item 2 against real Postgres: the start-time checks name what is missing or unreadable
// (a table, a column, a privilege, a query that cannot run, bad credentials, a database that does not
// exist) and tell an unreachable server apart (not permanent); a postgres-table destination whose
// table is missing is a problem of the destination (retried, named), not bad data (dead-lettered),
// while a row a CHECK constraint rejects still is. The columns a source's properties read (value,
// sortColumn, filter keys) are checked as its mapping's are, and a postgres-cdc source reading a
// generated column (pgoutput does not publish them) is refused.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppConfig, DestinationConfig, PropertyConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import { checkPostgresSources, checkPostgresTableDestination } from "../../connectors/postgres/live.js";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

const origin = { file: "config.yml", index: 0 };
const app = (connectionString: string) => ({ class: "app", id: "db", type: "postgres", options: { connectionString }, origin }) as unknown as Located<AppConfig>;
const source = (id: string, options: Record<string, unknown>, type = "postgres-cdc", mapping: Record<string, string> = { id: "user_id" }) =>
  ({ class: "source", id, type, appId: "db", modelId: "users", mapping, options, origin }) as unknown as Located<SourceConfig>;
const property = (id: string, sourceId: string, options: Record<string, unknown>, filters?: Record<string, unknown>[]) =>
  ({ class: "property", id, type: "float", sourceId, options, ...(filters ? { filters } : {}), origin }) as unknown as Located<PropertyConfig>;
const exportOf = (seq: number, email: string): DeliverableExport => ({
  seq,
  destinationId: "contacts",
  recordId: String(seq),
  oldRecordProperties: {},
  newRecordProperties: { id: seq, email },
  oldGroups: [],
  newGroups: [],
  toDelete: false,
  updateOnly: false,
  commitTime: 0,
});

describe("postgres errors, permanent and transient", () => {
  let db: TestDatabase;
  const role = `reader_${randomBytes(3).toString("hex")}`;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "pg_errors");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text, updated_at timestamptz)`);
    await db.query(`CREATE TABLE secrets (id int PRIMARY KEY)`);
    await db.query(
      `CREATE TABLE purchases (id int PRIMARY KEY, user_id int, amount numeric, state text, created_at timestamptz, amount_cents bigint GENERATED ALWAYS AS ((amount * 100)::bigint) STORED)`,
    );
    await db.query(`INSERT INTO purchases (id, user_id, amount, state, created_at) VALUES (1, 1, 10, 'paid', now())`);
    await db.query(`CREATE ROLE ${role} LOGIN`);
    await db.query(`GRANT SELECT ON users TO ${role}`);
  });
  afterAll(async () => {
    await db?.drop();
    // The role belongs to the cluster: dropped once its database (and privileges there) are gone.
    const admin = new pg.Client({ connectionString: testPgUrl() });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
  });
  const urlAs = (user: string, database = db.name) => {
    const url = new URL(db.url);
    url.username = user;
    url.pathname = `/${database}`;
    return url.toString();
  };

  it("names each missing table, column, privilege and broken query; passes what is there", async () => {
    const problems = await checkPostgresSources(app(urlAs(role)), [
      source("ok", { table: "users" }),
      source("missing_table", { table: "public.nosuch" }),
      source("missing_column", { table: "users" }, "postgres-cdc", { user_ref: "user_id" }),
      source("no_privilege", { table: "secrets" }),
      source("import", { table: "users", highWatermarkColumn: "changed_at" }, "postgres-table-import"),
      source("query", { query: "SELECT * FROM nosuch" }, "postgres-query-import", {}),
    ]);
    expect(problems).toEqual([
      { objectClass: "source", id: "missing_table", permanent: true, message: "table public.nosuch does not exist" },
      { objectClass: "source", id: "missing_column", permanent: true, message: "table public.users has no column user_ref (mapping.user_ref)" },
      { objectClass: "source", id: "no_privilege", permanent: true, message: "the app's user has no SELECT privilege on table public.secrets" },
      { objectClass: "source", id: "import", permanent: true, message: "table public.users has no column changed_at (options.highWatermarkColumn)" },
      { objectClass: "source", id: "query", permanent: true, message: 'its query cannot run: relation "nosuch" does not exist (SQLSTATE 42P01)' },
    ]);
  });

  it("names each column a source's properties read that its table lacks: the value, the sortColumn, a filter's key", async () => {
    const purchases = (id: string, type = "postgres-cdc") => source(id, { table: "purchases" }, type, { user_id: "user_id" });
    const problems = await checkPostgresSources(app(db.url), [purchases("cdc"), purchases("import", "postgres-table-import")], {
      properties: [
        property("total", "cdc", { column: "no_such_col", aggregationMethod: "sum" }),
        property("last_amount", "cdc", { column: "amount", aggregationMethod: "most recent value", sortColumn: "paid_at" }),
        property("paid", "cdc", { column: "amount", aggregationMethod: "sum" }, [
          { key: "status", op: "eq", match: "paid" },
          { key: "state", op: "eq", match: "paid" },
        ]),
        property("odd", "import", { column: "kind", aggregationMethod: "count" }, [{ key: "kind", op: "exists" }]),
        property("fine", "import", { column: "amount", aggregationMethod: "least recent value", sortColumn: "created_at" }, [{ key: "state", op: "eq", match: "paid" }]),
        // Another source's property: not these sources' concern.
        property("elsewhere", "other", { column: "no_such_col" }),
      ],
    });
    expect(problems).toEqual([
      { objectClass: "source", id: "cdc", permanent: true, message: 'property "total" reads column no_such_col (options.column), which table public.purchases does not have' },
      { objectClass: "source", id: "cdc", permanent: true, message: 'property "last_amount" reads column paid_at (options.sortColumn), which table public.purchases does not have' },
      { objectClass: "source", id: "cdc", permanent: true, message: 'property "paid" reads column status (filters[0].key), which table public.purchases does not have' },
      { objectClass: "source", id: "import", permanent: true, message: 'property "odd" reads column kind (options.column, filters[0].key), which table public.purchases does not have' },
    ]);
  });

  it("refuses a generated column a postgres-cdc source reads (pgoutput does not publish it); a table import reads it", async () => {
    const { rows } = await db.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    const major = Math.floor(Number(rows[0]?.v) / 10_000);
    expect(major).toBeLessThan(18);
    const reason = `pgoutput does not publish generated columns before Postgres 18 (the server is Postgres ${major}), so every streamed change would leave its value null or stale; a postgres-table-import reads it`;
    const sources = [
      source("cdc", { table: "purchases" }, "postgres-cdc", { user_id: "user_id" }),
      source("cdc_keyed", { table: "purchases" }, "postgres-cdc", { amount_cents: "cents" }),
      source("import", { table: "purchases", highWatermarkColumn: "amount_cents" }, "postgres-table-import", { amount_cents: "cents" }),
    ];
    const properties = [
      property("cents", "cdc", { column: "amount_cents", aggregationMethod: "sum" }),
      property("last_cents", "cdc", { column: "amount", aggregationMethod: "most recent value", sortColumn: "amount_cents" }),
      property("amount", "cdc", { column: "amount", aggregationMethod: "sum" }),
      property("import_cents", "import", { column: "amount_cents", aggregationMethod: "sum" }, [{ key: "amount_cents", op: "gt", match: 0 }]),
    ];
    expect(await checkPostgresSources(app(db.url), sources, { properties })).toEqual([
      { objectClass: "source", id: "cdc", permanent: true, message: `property "cents" reads column amount_cents (options.column), a generated column of table public.purchases: ${reason}` },
      { objectClass: "source", id: "cdc", permanent: true, message: `property "last_cents" reads column amount_cents (options.sortColumn), a generated column of table public.purchases: ${reason}` },
      { objectClass: "source", id: "cdc_keyed", permanent: true, message: `the mapping reads column amount_cents, a generated column of table public.purchases: ${reason}` },
    ]);
  });

  it("passes sources whose every column exists; checks a query import's properties against the columns its query returns, without reading a row", async () => {
    const sources = [
      source("cdc", { table: "purchases" }, "postgres-cdc", { user_id: "user_id" }),
      source("import", { table: "public.purchases", highWatermarkColumn: "created_at" }, "postgres-table-import", { user_id: "user_id" }),
      // Run, its division would fail on the table's row: LIMIT 0 reads none.
      source("query", { query: "SELECT user_id, sum(amount / (id - id)) AS total, max(state) AS state FROM purchases GROUP BY user_id;\n" }, "postgres-query-import", { user_id: "user_id" }),
    ];
    const properties = [
      property("total", "cdc", { column: "amount", aggregationMethod: "sum" }, [{ key: "state", op: "eq", match: "paid" }]),
      property("last_amount", "cdc", { column: "amount", aggregationMethod: "most recent value", sortColumn: "created_at" }),
      property("import_total", "import", { column: "amount_cents", aggregationMethod: "sum" }),
      property("query_total", "query", { column: "total" }, [{ key: "state", op: "eq", match: "paid" }]),
    ];
    expect(await checkPostgresSources(app(db.url), sources, { properties })).toEqual([]);

    const wrong = source("query", { query: "SELECT user_id AS uid, sum(amount) AS total FROM purchases GROUP BY user_id" }, "postgres-query-import", { user_id: "user_id" });
    expect(await checkPostgresSources(app(db.url), [wrong], { properties: [property("query_total", "query", { column: "amount" }, [{ key: "total", op: "gt", match: 0 }])] })).toEqual([
      { objectClass: "source", id: "query", permanent: true, message: "its query returns no column user_id (mapping.user_id)" },
      { objectClass: "source", id: "query", permanent: true, message: 'property "query_total" reads column amount (options.column), which its query does not return' },
    ]);
  });

  it("calls a missing database or bad credentials permanent, and a server that refuses connections not", async () => {
    const [missingDb] = await checkPostgresSources(app(urlAs("postgres", "nosuch_db")), [source("s", { table: "users" })]);
    expect(missingDb).toEqual({ objectClass: "app", id: "db", permanent: true, message: 'cannot use the database: database "nosuch_db" does not exist (SQLSTATE 3D000)' });
    const [noRole] = await checkPostgresSources(app(urlAs("nosuch_role")), [source("s", { table: "users" })]);
    expect(noRole).toMatchObject({ objectClass: "app", id: "db", permanent: true });
    expect(noRole?.message).toContain("SQLSTATE 28");
    const [down] = await checkPostgresSources(app(`postgres://postgres@127.0.0.1:${await freePort()}/x`), [source("s", { table: "users" })]);
    expect(down).toMatchObject({ objectClass: "app", id: "db", permanent: false });
    expect(down?.message).toMatch(/^cannot reach the database to check it: .*ECONNREFUSED/);
  });

  it("checks a destination's table, columns and the writes its sync mode makes", async () => {
    const destination = (table: string, syncMode = "sync") =>
      ({ class: "destination", id: "contacts", type: "postgres-table", appId: "db", modelId: "users", collection: "model", syncMode, mapping: { id: "user_id", email: "email" }, options: { table, primaryKey: "id" }, origin }) as unknown as Located<DestinationConfig>;
    expect(await checkPostgresTableDestination(destination("contacts"), app(db.url))).toEqual([{ objectClass: "destination", id: "contacts", permanent: true, message: "table public.contacts does not exist" }]);
    expect(await checkPostgresTableDestination(destination("users"), app(db.url))).toEqual([]);
    // A missing column is named with the fields of the config that name it (before 2026-12-03, the column alone).
    const misnamed = { ...destination("users"), mapping: { id: "user_id", mail: "email" }, options: { table: "users", primaryKey: "id", groupsColumn: "segments" } } as Located<DestinationConfig>;
    expect(await checkPostgresTableDestination(misnamed, app(db.url))).toEqual([
      { objectClass: "destination", id: "contacts", permanent: true, message: "table public.users has no column mail (mapping.mail), segments (options.groupsColumn)" },
    ]);
    expect((await checkPostgresTableDestination(destination("users"), app(urlAs(role)))).map((p) => p.message)).toEqual([
      "the app's user has no INSERT privilege on table public.users",
      "the app's user has no UPDATE privilege on table public.users",
      "the app's user has no DELETE privilege on table public.users",
    ]);
  });

  it("retries a destination whose table is missing and names it; dead-letters only what a constraint rejects", async () => {
    const connector = new PostgresTableDestination("contacts", { connectionString: db.url }, { table: "contacts", primaryKey: "id", syncMode: "sync", fieldTypes: {} });
    try {
      const failed = await connector.deliver([exportOf(1, "ada@example.com")]).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failed).toBeInstanceOf(DeliveryError);
      expect((failed as DeliveryError).retryable).toBe(true);
      expect(connector.ready()).toBe(false);
      expect(connector.problem()).toBe('relation "public.contacts" does not exist (SQLSTATE 42P01)');

      await db.query(`CREATE TABLE contacts (id int PRIMARY KEY, email text CHECK (email LIKE '%@%'))`);
      expect(await connector.deliver([exportOf(1, "ada@example.com")])).toEqual([{ seq: 1, status: "ok" }]);
      expect(connector.problem()).toBeNull();
      expect(connector.ready()).toBe(true);

      const rejected = await connector.deliver([exportOf(2, "not-an-email")]).then(
        () => undefined,
        (error: unknown) => error as DeliveryError,
      );
      expect(rejected?.retryable).toBe(false);
      expect(connector.problem()).toBeNull();
    } finally {
      await connector.stop();
    }
  });
});
