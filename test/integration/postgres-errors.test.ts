// Issue #12 item 2 against real Postgres: the start-time checks name what is missing or unreadable
// (a table, a column, a privilege, a query that cannot run, bad credentials, a database that does not
// exist) and tell an unreachable server apart (not permanent); a postgres-table destination whose
// table is missing is a problem of the destination (retried, named), not bad data (dead-lettered),
// while a row a CHECK constraint rejects still is.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AppConfig, DestinationConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import { checkPostgresSources, checkPostgresTableDestination } from "../../connectors/postgres/live.js";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";

const origin = { file: "config.yml", index: 0 };
const app = (connectionString: string) => ({ class: "app", id: "db", type: "postgres", options: { connectionString }, origin }) as unknown as Located<AppConfig>;
const source = (id: string, options: Record<string, unknown>, type = "postgres-cdc", mapping: Record<string, string> = { id: "user_id" }) =>
  ({ class: "source", id, type, appId: "db", modelId: "users", mapping, options, origin }) as unknown as Located<SourceConfig>;
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
    db = await createTestDatabase(inject("pgUrl"), "pg_errors");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text, updated_at timestamptz)`);
    await db.query(`CREATE TABLE secrets (id int PRIMARY KEY)`);
    await db.query(`CREATE ROLE ${role} LOGIN`);
    await db.query(`GRANT SELECT ON users TO ${role}`);
  });
  afterAll(async () => {
    await db?.drop();
    // The role belongs to the cluster: dropped once its database (and privileges there) are gone.
    const admin = new pg.Client({ connectionString: inject("pgUrl") });
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
      { objectClass: "source", id: "missing_column", permanent: true, message: "table public.users has no column user_ref" },
      { objectClass: "source", id: "no_privilege", permanent: true, message: "the app's user has no SELECT privilege on table public.secrets" },
      { objectClass: "source", id: "import", permanent: true, message: "table public.users has no column changed_at" },
      { objectClass: "source", id: "query", permanent: true, message: 'its query cannot run: relation "nosuch" does not exist (SQLSTATE 42P01)' },
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
    expect((await checkPostgresTableDestination(destination("users"), app(urlAs(role)))).map((p) => p.message)).toEqual([
      "the app's user has no INSERT privilege on table public.users",
      "the app's user has no UPDATE privilege on table public.users",
      "the app's user has no DELETE privilege on table public.users",
    ]);
  });

  it("retries a destination whose table is missing and names it; dead-letters only what a constraint rejects", async () => {
    const connector = new PostgresTableDestination("contacts", { connectionString: db.url }, "contacts", "id", undefined, {});
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
