// A postgres-table destination whose primaryKey column is not text (uuid, numeric, citext): the key
// an export carries is compared with the column as the column's type compares it, for the delete of a
// record (sync, toDelete) and for enrich's check that the table has the record, as the upsert does.
// Before, both compared the column's text with the key's text: an upper-case uuid (the source's text
// as it is) or 1.50 in a numeric column never matched, so the row stayed after the delete was
// acknowledged, and an enrich update that did write was reported as info ("no such record").
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import type { DeliverableExport } from "../../connectors/types.js";
import type { SyncMode } from "../../core/vocabulary.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

let seq = 0;
const exportOf = (recordId: string, properties: Record<string, unknown>, options: { toDelete?: boolean; updateOnly?: boolean } = {}): DeliverableExport => ({
  seq: ++seq,
  destinationId: "crm",
  recordId,
  oldRecordProperties: (options.toDelete ? properties : {}) as DeliverableExport["oldRecordProperties"],
  newRecordProperties: properties as DeliverableExport["newRecordProperties"],
  oldGroups: [],
  newGroups: [],
  toDelete: options.toDelete ?? false,
  updateOnly: options.updateOnly ?? false,
  commitTime: 0,
});

describe("postgres-table: keys compared as the column's type", () => {
  let db: TestDatabase;
  const connectors: PostgresTableDestination[] = [];
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "table_key_types");
  });
  afterEach(async () => {
    await Promise.all(connectors.splice(0).map((c) => c.stop()));
    await db.drop();
  });
  const connect = (table: string, syncMode: SyncMode, keyType: "string" | "float") => {
    const connector = new PostgresTableDestination("crm", { connectionString: db.url }, { table, primaryKey: "id", syncMode, fieldTypes: { id: keyType, name: "string" } });
    connectors.push(connector);
    return connector;
  };

  it("deletes the row of a record whose key is an upper-case uuid, or 1.5 in a numeric(10, 2) column (1.50)", async () => {
    const UUID = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11";
    await db.query("CREATE TABLE by_uuid (id uuid PRIMARY KEY, name text)");
    await db.query("CREATE TABLE by_numeric (id numeric(10, 2) PRIMARY KEY, name text)");
    const uuid = connect("by_uuid", "sync", "string");
    const numeric = connect("by_numeric", "sync", "float");
    await uuid.deliver([exportOf("1", { id: UUID, name: "Ada" })]);
    await numeric.deliver([exportOf("1", { id: 1.5, name: "Ada" })]);
    expect((await db.query("SELECT id::text FROM by_uuid")).rows).toEqual([{ id: UUID.toLowerCase() }]);
    const deleted = [exportOf("1", { id: UUID, name: "Ada" }, { toDelete: true })];
    expect(await uuid.deliver(deleted)).toEqual([{ seq: deleted[0]?.seq, status: "ok" }]);
    await numeric.deliver([exportOf("1", { id: 1.5, name: "Ada" }, { toDelete: true })]);
    expect({ uuid: (await db.query("SELECT * FROM by_uuid")).rows, numeric: (await db.query("SELECT * FROM by_numeric")).rows }).toEqual({ uuid: [], numeric: [] });
  });

  it("enrich: an update of a record the table has under an upper-case uuid is ok, not info", async () => {
    const UUID = "B1EEBC99-9C0B-4EF8-BB6D-6BB9BD380A22";
    await db.query("CREATE TABLE enriched (id uuid PRIMARY KEY, name text)");
    await db.query(`INSERT INTO enriched VALUES ('${UUID.toLowerCase()}', 'old')`);
    const crm = connect("enriched", "enrich", "string");
    const batch = [exportOf("1", { id: UUID, name: "new" }, { updateOnly: true }), exportOf("2", { id: "C2EEBC99-9C0B-4EF8-BB6D-6BB9BD380A33", name: "absent" }, { updateOnly: true })];
    expect(await crm.deliver(batch)).toEqual([
      { seq: batch[0]?.seq, status: "ok" },
      { seq: batch[1]?.seq, status: "info", message: "enrich: the table has no such record" },
    ]);
    expect((await db.query("SELECT id::text, name FROM enriched")).rows).toEqual([{ id: UUID.toLowerCase(), name: "new" }]);
  });
});
