// A postgres-table destination sending exports planned under an earlier mapping (queued, or being
// sent, when a reload or a restart changed it: README "Config changes", they are not held back) with a
// date field the mapping no longer has (removed, or renamed). Dates travel as epoch ms; the connector
// typed them by the current mapping only, so such a field went to its timestamp column as a number:
// a data error (22007), the batch rejected, split, and each of those exports dead-lettered. Now a field
// the mapping does not type is typed by the table's column: written as the timestamp it is, as the
// export's own columns are (README: "an export planned under an earlier mapping writes its own columns").
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import type { DeliverableExport } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const SIGNUP = Date.UTC(2026, 10, 20, 9, 30, 0);
const DAY = Date.UTC(2026, 10, 21);

const exportOf = (seq: number, newRecordProperties: Record<string, unknown>, oldRecordProperties: Record<string, unknown> = {}): DeliverableExport => ({
  seq,
  destinationId: "crm",
  recordId: String(seq),
  oldRecordProperties: oldRecordProperties as DeliverableExport["oldRecordProperties"],
  newRecordProperties: newRecordProperties as DeliverableExport["newRecordProperties"],
  oldGroups: [],
  newGroups: [],
  toDelete: false,
  updateOnly: false,
  commitTime: 0,
});

describe("postgres-table: exports of an earlier mapping", () => {
  let db: TestDatabase;
  const connectors: PostgresTableDestination[] = [];
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "table_earlier_mapping");
  });
  afterEach(async () => {
    await Promise.all(connectors.splice(0).map((c) => c.stop()));
    await db.drop();
  });

  it("writes a date field the mapping no longer has as a timestamp (and a date array), as the export planned it; a mapped field is typed by its property still", async () => {
    await db.query("CREATE TABLE contacts (id int PRIMARY KEY, email text, signup timestamptz, first_day date, visits timestamp[], score bigint)");
    // The mapping now: {id, email, score}; `signup`, `first_day` and `visits` (dates) were mapped before.
    const crm = new PostgresTableDestination("crm", { connectionString: db.url }, { table: "contacts", primaryKey: "id", syncMode: "sync", fieldTypes: { id: "integer", email: "email", score: "integer" } });
    connectors.push(crm);
    const queued = [
      exportOf(1, { id: 1, email: "a@example.com", signup: SIGNUP, first_day: DAY, visits: [SIGNUP, DAY] }),
      exportOf(2, { id: 2, email: "b@example.com", signup: null, score: 42 }),
    ];
    expect(await crm.deliver(queued)).toEqual([
      { seq: 1, status: "ok" },
      { seq: 2, status: "ok" },
    ]);
    // The Run's export under the new mapping follows: it leaves the old columns as they are.
    expect(await crm.deliver([exportOf(3, { id: 1, email: "a2@example.com", score: 7 }, { id: 1, email: "a@example.com" })])).toEqual([{ seq: 3, status: "ok" }]);
    const { rows } = await db.query<Record<string, unknown>>(
      "SELECT id, email, to_char(signup AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS signup, first_day::text AS first_day, visits::text AS visits, score FROM contacts ORDER BY id",
    );
    expect(rows).toEqual([
      { id: 1, email: "a2@example.com", signup: "2026-11-20 09:30:00", first_day: "2026-11-21", visits: '{"2026-11-20 09:30:00","2026-11-21 00:00:00"}', score: "7" },
      { id: 2, email: "b@example.com", signup: null, first_day: null, visits: null, score: "42" },
    ]);
  });
});
