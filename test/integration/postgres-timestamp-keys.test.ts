// Rows keyed by a timestamp column (an events table keyed by user and time) through the postgres-cdc
// source against real Postgres: snapshot, stream and delete key each row to the microsecond, for
// `timestamptz` and `timestamp` alike. Before 2026-12-03 the key was the Date's ISO text, to the
// millisecond: two events of a user within one millisecond were one row (the second replaced the
// first, and a delete of either removed it), and the user's count was short.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { startCdc, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { testPgUrl } from "../services/use.js";

type Obj = Record<string, unknown>;

describe("postgres-cdc timestamp keys", () => {
  let db: TestDatabase;
  let run: CdcRun | undefined;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "tskeys");
  });
  afterEach(async () => {
    await run?.stop();
    run = undefined;
    await db.drop();
  });

  for (const type of ["timestamptz", "timestamp"]) {
    it(`keeps events of one user within one millisecond as rows of their own (${type}), through the snapshot, the stream and a delete`, { timeout: 60_000 }, async () => {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      await db.query(`CREATE TABLE events (user_id int, occurred_at ${type}, kind text, PRIMARY KEY (user_id, occurred_at))`);
      await db.query(`INSERT INTO users VALUES (7)`);
      // The snapshot reads two events a microsecond apart.
      await db.query(`INSERT INTO events VALUES (7, '2023-11-14 22:13:20.123456', 'view'), (7, '2023-11-14 22:13:20.123457', 'cart')`);
      const objects: Obj[] = [
        { class: "app", id: "pg", type: "postgres", options: { connectionString: db.url, slot: "ts_slot", publication: "ts_pub" } },
        { class: "model", id: "users" },
        { class: "source", id: "users_table", type: "postgres-cdc", appId: "pg", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
        { class: "source", id: "events_table", type: "postgres-cdc", appId: "pg", modelId: "users", options: { table: "events" }, mapping: { user_id: "user_id" } },
        { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
        { class: "property", id: "event_count", type: "integer", sourceId: "events_table", options: { column: "kind", aggregationMethod: "count" } },
      ];
      run = startCdc(validConfig(objects));
      const current = run;
      const keys = () => [...current.store.rowsOf("events_table")].map(([key]) => key).sort();
      await waitFor("the snapshot", async () => (current.store.getRecord("users", "7")?.values.event_count === 2 ? true : undefined));
      expect(keys()).toEqual(["7,2023-11-14T22:13:20.123456Z", "7,2023-11-14T22:13:20.123457Z"]);

      // The stream: one more a microsecond later, and one with no digits past the millisecond.
      await db.query(`INSERT INTO events VALUES (7, '2023-11-14 22:13:20.123458', 'buy'), (7, '2023-11-14 22:13:20.124', 'view')`);
      await waitFor("the streamed events", async () => (current.store.getRecord("users", "7")?.values.event_count === 4 ? true : undefined));
      expect(keys()).toEqual(["7,2023-11-14T22:13:20.123456Z", "7,2023-11-14T22:13:20.123457Z", "7,2023-11-14T22:13:20.123458Z", "7,2023-11-14T22:13:20.124Z"]);

      // A delete (its key alone, REPLICA IDENTITY DEFAULT) removes its own row and no other.
      await db.query(`DELETE FROM events WHERE occurred_at = '2023-11-14 22:13:20.123457'`);
      await waitFor("the delete", async () => (current.store.getRecord("users", "7")?.values.event_count === 3 ? true : undefined));
      expect(keys()).toEqual(["7,2023-11-14T22:13:20.123456Z", "7,2023-11-14T22:13:20.123458Z", "7,2023-11-14T22:13:20.124Z"]);
      expect(current.store.sourceDeadLetters()).toEqual([]);
    });
  }
});
