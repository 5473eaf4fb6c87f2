// The row estimate an initial snapshot's progress is read against (grouparoo_snapshot_rows_estimated):
// pg_class.reltuples, or the planner's estimate for a table never vacuumed nor analyzed (reltuples is
// -1 then, since Postgres 14: a table just loaded or restored). Before 2026-12-03 such a table's
// estimate was 0, and the dashboard's progress (read over estimated) infinite.
import { describe, expect, it } from "vitest";
import { estimateRows } from "../../connectors/postgres/cdc/snapshot.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("a snapshot's row estimate", () => {
  it("is the planner's for a table never analyzed, and reltuples once it is", { timeout: 60_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "snapshot_estimate");
    try {
      await db.query(`CREATE TABLE loaded (id int PRIMARY KEY, name text) WITH (autovacuum_enabled = false)`);
      await db.query(`INSERT INTO loaded SELECT g, 'name' || g FROM generate_series(1, 20000) g`);
      expect((await db.query<{ reltuples: number }>(`SELECT reltuples FROM pg_class WHERE relname = 'loaded'`)).rows[0]?.reltuples).toBe(-1);
      const plan = await db.query<{ "QUERY PLAN": string }>(`EXPLAIN SELECT * FROM loaded`);
      const planned = Number(/rows=(\d+)/.exec(plan.rows[0]?.["QUERY PLAN"] ?? "")?.[1]);
      expect(planned).toBeGreaterThan(0);
      expect(await estimateRows(db, `"public"."loaded"`)).toBe(planned);
      await db.query(`ANALYZE loaded`);
      expect(await estimateRows(db, `"public"."loaded"`)).toBe(20000);
      // An empty table analyzed holds 0 rows, as its statistics say.
      await db.query(`CREATE TABLE empty (id int PRIMARY KEY)`);
      await db.query(`ANALYZE empty`);
      expect(await estimateRows(db, `"public"."empty"`)).toBe(0);
    } finally {
      await db.drop();
    }
  });
});
