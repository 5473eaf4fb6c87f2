// A postgres-table destination's statementTimeoutMs, on real Postgres: a batch written into a table
// someone holds locked fails once the timeout passes, as a retryable delivery error naming the
// timeout (not a rejection of the data), and the same batch goes through once the lock is gone.
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const exportOf = (seq: number): DeliverableExport => ({
  seq,
  destinationId: "crm",
  recordId: String(seq),
  oldRecordProperties: {},
  newRecordProperties: { id: seq, email: `u${seq}@example.com` },
  oldGroups: [],
  newGroups: [],
  toDelete: false,
  updateOnly: false,
  commitTime: 0,
});

describe("postgres-table statementTimeoutMs", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "table_timeout");
    await db.query("CREATE TABLE contacts (id int PRIMARY KEY, email text)");
  });
  afterEach(async () => {
    await db.drop();
  });

  it("fails a write waiting on a lock after the timeout, retryably, and writes it once the lock is gone", { timeout: 30_000 }, async () => {
    const destination = new PostgresTableDestination("crm", { connectionString: db.url }, { table: "contacts", primaryKey: "id", syncMode: "sync", fieldTypes: { id: "integer", email: "email" }, statementTimeoutMs: 300 });
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    try {
      await lock.query("BEGIN");
      await lock.query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE");
      const started = performance.now();
      const error = await destination.deliver([exportOf(1), exportOf(2)]).then(
        () => undefined,
        (e: unknown) => e,
      );
      const waited = performance.now() - started;
      expect(error).toBeInstanceOf(DeliveryError);
      expect((error as DeliveryError).retryable).toBe(true);
      expect((error as Error).message).toBe("writing contacts failed (57014): canceling statement due to statement timeout");
      expect(waited).toBeGreaterThanOrEqual(300);
      await lock.query("COMMIT");
      expect(await destination.deliver([exportOf(1), exportOf(2)])).toEqual([
        { seq: 1, status: "ok" },
        { seq: 2, status: "ok" },
      ]);
      expect((await db.query("SELECT id, email FROM contacts ORDER BY id")).rows).toEqual([
        { id: 1, email: "u1@example.com" },
        { id: 2, email: "u2@example.com" },
      ]);
    } finally {
      await lock.end();
      await destination.stop();
    }
  });
});
