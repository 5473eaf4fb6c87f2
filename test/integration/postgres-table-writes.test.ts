// What a postgres-table destination writes, on real Postgres, against what a fresh daemon on the same
// config and data would write (fresh exports into an empty table of the same shape): a batch whose
// exports were planned under different mappings writes each export's own columns; in sync mode a
// record whose primary key changed leaves no row under its old key (also when two records swap keys,
// in one batch or across two); a primaryKey column no unique index covers is refused by the live
// check and named as the destination's problem; enrich with nothing mapped but the key updates nothing.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppConfig, DestinationConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import type { SyncMode } from "../../core/vocabulary.js";
import { checkPostgresTableDestination } from "../../connectors/postgres/live.js";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

type Properties = Record<string, unknown>;
interface Planned {
  recordId: string;
  old?: Properties;
  new: Properties;
  oldGroups?: string[];
  groups?: string[];
  toDelete?: boolean;
  updateOnly?: boolean;
}

let seq = 0;
const exportOf = (p: Planned): DeliverableExport => ({
  seq: ++seq,
  destinationId: "crm",
  recordId: p.recordId,
  oldRecordProperties: p.old ?? {},
  newRecordProperties: p.new,
  oldGroups: p.oldGroups ?? [],
  newGroups: p.groups ?? [],
  toDelete: p.toDelete ?? false,
  updateOnly: p.updateOnly ?? false,
  commitTime: 0,
});

describe("postgres-table writes", () => {
  let db: TestDatabase;
  const connectors: PostgresTableDestination[] = [];
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "table_writes");
  });
  afterEach(async () => {
    await Promise.all(connectors.splice(0).map((c) => c.stop()));
    await db.drop();
  });

  const connect = (table: string, primaryKey: string, syncMode: SyncMode, groupsColumn?: string) => {
    const connector = new PostgresTableDestination("crm", { connectionString: db.url }, { table, primaryKey, syncMode, fieldTypes: {}, ...(groupsColumn ? { groupsColumn } : {}) });
    connectors.push(connector);
    return connector;
  };
  const rows = async (table: string, orderBy: string) => (await db.query(`SELECT * FROM ${table} ORDER BY ${orderBy}`)).rows;
  /** The table a fresh daemon makes: `ddl` (with TABLE_NAME) and one fresh export of each record's current state. */
  const fresh = async (ddl: string, primaryKey: string, syncMode: SyncMode, groupsColumn: string | undefined, records: { new: Properties; groups?: string[] }[]) => {
    await db.query(ddl.replace("TABLE_NAME", "fresh"));
    await connect("fresh", primaryKey, syncMode, groupsColumn).deliver(records.map((r, i) => exportOf({ recordId: `fresh-${i}`, new: r.new, ...(r.groups ? { groups: r.groups } : {}) })));
    return rows("fresh", primaryKey);
  };

  it("writes every column of every export of a batch planned under different mappings, and leaves a column an export does not carry as it is", async () => {
    const ddl = "CREATE TABLE TABLE_NAME (id int PRIMARY KEY, email text, phone text, groups text[] NOT NULL DEFAULT '{}')";
    await db.query(ddl.replace("TABLE_NAME", "contacts"));
    const crm = connect("contacts", "id", "sync", "groups");
    // Under the mapping {id, email}.
    await crm.deliver([1, 2, 3].map((n) => exportOf({ recordId: `r${n}`, new: { id: n, email: `u${n}@example.com` }, groups: ["VIP"] })));
    // The mapping gains phone. First in the batch: record 3 leaving the tracked group (a delete carrying
    // the properties it was acknowledged with, under the old mapping); then the Run's exports of 1 and 2.
    const added = [
      exportOf({ recordId: "r3", old: { id: 3, email: "u3@example.com" }, oldGroups: ["VIP"], new: { id: 3, email: "u3@example.com" }, toDelete: true }),
      exportOf({ recordId: "r1", old: { id: 1, email: "u1@example.com" }, oldGroups: ["VIP"], new: { id: 1, email: "u1@example.com", phone: "111" }, groups: ["VIP"] }),
      exportOf({ recordId: "r2", old: { id: 2, email: "u2@example.com" }, oldGroups: ["VIP"], new: { id: 2, email: "u2@example.com", phone: "222" }, groups: ["VIP"] }),
    ];
    expect(await crm.deliver(added)).toEqual(added.map((e) => ({ seq: e.seq, status: "ok" })));
    const afterAdding = [
      { id: 1, email: "u1@example.com", phone: "111", groups: ["VIP"] },
      { id: 2, email: "u2@example.com", phone: "222", groups: ["VIP"] },
    ];
    expect(await rows("contacts", "id")).toEqual(afterAdding);
    expect(await fresh(ddl, "id", "sync", "groups", [{ new: { id: 1, email: "u1@example.com", phone: "111" }, groups: ["VIP"] }, { new: { id: 2, email: "u2@example.com", phone: "222" }, groups: ["VIP"] }])).toEqual(afterAdding);

    // The mapping loses phone again: an export of 1 planned before (with phone), then one of 2 planned
    // after (without), in one batch. 2's phone is no longer written: it stays what it was, not NULL.
    const removed = [
      exportOf({ recordId: "r1", old: { id: 1, email: "u1@example.com", phone: "111" }, oldGroups: ["VIP"], new: { id: 1, email: "u1@example.com", phone: "112" }, groups: ["VIP"] }),
      exportOf({ recordId: "r2", old: { id: 2, email: "u2@example.com", phone: "222" }, oldGroups: ["VIP"], new: { id: 2, email: "u2@new.example.com" }, groups: [] }),
    ];
    expect(await crm.deliver(removed)).toEqual(removed.map((e) => ({ seq: e.seq, status: "ok" })));
    expect(await rows("contacts", "id")).toEqual([
      { id: 1, email: "u1@example.com", phone: "112", groups: ["VIP"] },
      { id: 2, email: "u2@new.example.com", phone: "222", groups: [] },
    ]);
  });

  it("sync: a record whose primary key changed leaves no row under its old key, also when two records swap keys in one batch or across two", async () => {
    const ddl = "CREATE TABLE TABLE_NAME (email text PRIMARY KEY, name text, groups text[] NOT NULL DEFAULT '{}')";
    await db.query(ddl.replace("TABLE_NAME", "contacts"));
    const crm = connect("contacts", "email", "sync", "groups");
    const ada = { email: "ada@example.com", name: "Ada" };
    const bob = { email: "bob@example.com", name: "Bob" };
    await crm.deliver([exportOf({ recordId: "ada", new: ada, groups: ["VIP"] }), exportOf({ recordId: "bob", new: bob })]);

    const ada2 = { ...ada, email: "ada@new.example.com" };
    await crm.deliver([exportOf({ recordId: "ada", old: ada, oldGroups: ["VIP"], new: ada2, groups: ["VIP"] })]);
    expect(await rows("contacts", "email")).toEqual([
      { email: "ada@new.example.com", name: "Ada", groups: ["VIP"] },
      { email: "bob@example.com", name: "Bob", groups: [] },
    ]);

    // Swapped in one batch: both old keys go before either new one is written.
    const adaSwapped = { ...ada, email: bob.email };
    const bobSwapped = { ...bob, email: ada2.email };
    await crm.deliver([exportOf({ recordId: "ada", old: ada2, oldGroups: ["VIP"], new: adaSwapped, groups: ["VIP"] }), exportOf({ recordId: "bob", old: bob, new: bobSwapped })]);
    const swapped = [
      { email: "ada@new.example.com", name: "Bob", groups: [] },
      { email: "bob@example.com", name: "Ada", groups: ["VIP"] },
    ];
    expect(await rows("contacts", "email")).toEqual(swapped);

    // Swapped back across two batches, Bob's first: Bob's upsert takes the row under Ada's key, which
    // Ada's later batch then leaves (it no longer holds what Ada put there).
    await crm.deliver([exportOf({ recordId: "bob", old: bobSwapped, new: bob })]);
    await crm.deliver([exportOf({ recordId: "ada", old: adaSwapped, oldGroups: ["VIP"], new: ada2, groups: ["VIP"] })]);
    const final = [
      { email: "ada@new.example.com", name: "Ada", groups: ["VIP"] },
      { email: "bob@example.com", name: "Bob", groups: [] },
    ];
    expect(await rows("contacts", "email")).toEqual(final);
    expect(await fresh(ddl, "email", "sync", "groups", [{ new: ada2, groups: ["VIP"] }, { new: bob }])).toEqual(final);
  });

  it("additive: a record whose primary key changed keeps its row under the old key (additive never deletes)", async () => {
    await db.query("CREATE TABLE contacts (email text PRIMARY KEY, name text)");
    const crm = connect("contacts", "email", "additive");
    await crm.deliver([exportOf({ recordId: "ada", new: { email: "ada@example.com", name: "Ada" } })]);
    await crm.deliver([exportOf({ recordId: "ada", old: { email: "ada@example.com", name: "Ada" }, new: { email: "ada@new.example.com", name: "Ada" } })]);
    expect(await rows("contacts", "email")).toEqual([
      { email: "ada@example.com", name: "Ada" },
      { email: "ada@new.example.com", name: "Ada" },
    ]);
  });

  it("refuses a primaryKey column without a unique index of exactly it (enrich needs none), and names 42P10 as the destination's problem", async () => {
    await db.query("CREATE TABLE plain (id int, email text)");
    await db.query("CREATE TABLE composite (id int, email text, UNIQUE (id, email))");
    await db.query("CREATE TABLE partial (id int, email text)");
    await db.query("CREATE UNIQUE INDEX partial_id ON partial (id) WHERE id > 0");
    await db.query("CREATE TABLE deferred (id int UNIQUE DEFERRABLE INITIALLY DEFERRED, email text)");
    await db.query("CREATE TABLE indexed (id int, email text)");
    await db.query("CREATE UNIQUE INDEX indexed_id ON indexed (id) INCLUDE (email)");
    await db.query("CREATE TABLE keyed (id int PRIMARY KEY, email text)");
    const origin = { file: "config.yml", index: 0 };
    const app = { class: "app", id: "db", type: "postgres", options: { connectionString: db.url }, origin } as unknown as Located<AppConfig>;
    const destination = (table: string, syncMode: SyncMode = "sync") =>
      ({ class: "destination", id: "crm", type: "postgres-table", appId: "db", modelId: "users", collection: "model", syncMode, mapping: { id: "user_id", email: "email" }, options: { table, primaryKey: "id" }, origin }) as unknown as Located<DestinationConfig>;
    const problems = async (table: string, syncMode?: SyncMode) => checkPostgresTableDestination(destination(table, syncMode), app);
    const missing = (table: string) => [{ objectClass: "destination", id: "crm", permanent: true, message: `table public.${table} has no unique constraint or unique index of exactly its primaryKey column id (the upsert's ON CONFLICT (id) needs one)` }];
    expect(await problems("plain")).toEqual(missing("plain"));
    expect(await problems("plain", "additive")).toEqual(missing("plain"));
    expect(await problems("composite")).toEqual(missing("composite"));
    expect(await problems("partial")).toEqual(missing("partial"));
    expect(await problems("deferred")).toEqual(missing("deferred"));
    expect(await problems("plain", "enrich")).toEqual([]);
    expect(await problems("indexed")).toEqual([]);
    expect(await problems("keyed")).toEqual([]);

    // Started anyway (the table changed after the check): retried, not dead-lettered, and named.
    const crm = connect("plain", "id", "sync");
    const failed = await crm.deliver([exportOf({ recordId: "r1", new: { id: 1, email: "a@example.com" } })]).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(DeliveryError);
    expect((failed as DeliveryError).retryable).toBe(true);
    expect(crm.ready()).toBe(false);
    expect(crm.problem()).toBe("there is no unique or exclusion constraint matching the ON CONFLICT specification (SQLSTATE 42P10)");
  });

  it("enrich with nothing mapped but the primary key writes nothing: the record the table has is ok, the one it lacks is info", async () => {
    const ddl = "CREATE TABLE TABLE_NAME (id int PRIMARY KEY, email text)";
    await db.query(ddl.replace("TABLE_NAME", "contacts"));
    await db.query("INSERT INTO contacts VALUES (1, 'kept@example.com')");
    const crm = connect("contacts", "id", "enrich");
    const batch = [exportOf({ recordId: "r1", new: { id: 1 }, updateOnly: true }), exportOf({ recordId: "r2", new: { id: 2 }, updateOnly: true })];
    expect(await crm.deliver(batch)).toEqual([
      { seq: batch[0]?.seq, status: "ok" },
      { seq: batch[1]?.seq, status: "info", message: "enrich: the table has no such record" },
    ]);
    expect(await rows("contacts", "id")).toEqual([{ id: 1, email: "kept@example.com" }]);
  });
});
