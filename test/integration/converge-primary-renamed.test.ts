// A model's primary source renamed (its id changed, its table and properties kept): the old source is
// removed, which deletes its records, and the new one reads them again. Before 2026-12-03 the
// properties it fed were removed first (they "moved source"), user_id's unique values with them, so
// the purchases rows attached through user_id stayed attached to the deleted records instead of
// waiting for them: the records read again had none of those rows, their count and sum only what
// streamed in afterwards, for good. Compared with a fresh daemon (test/helpers/converge.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { converge, shopConfig, type ConvergenceScenario, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const renamed = (): Obj[] =>
  structuredClone(shopConfig()).map((o) => (o.class === "source" && o.id === "users_table" ? { ...o, id: "people_table" } : o.sourceId === "users_table" ? { ...o, sourceId: "people_table" } : o));

const SCENARIOS: Record<string, ConvergenceScenario> = {
  "the primary source renamed": { configs: [shopConfig(), renamed()] },
  "renamed, then back": { configs: [shopConfig(), renamed(), shopConfig()] },
};

const values = (state: Record<string, unknown>, id: string) => (state.records as Record<string, { values: Record<string, unknown>; groups: string[] }>)[`users/${id}`];

describe("a primary source renamed", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "primary_renamed");
  });
  afterEach(async () => {
    await db.drop();
  });

  for (const mode of ["restart", "reload"] as const) {
    it.each(Object.entries(SCENARIOS))(`by a ${mode}: %s`, { timeout: 120_000 }, async (_name, scenario) => {
      const result = await converge(db, scenario, mode);
      expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
      expect(result.table).toEqual(result.oracleTable);
      // User 7 has purchases 6, 16, 26 and 36 from the start (user_id = 1 + id % 10), none changed by the writes.
      expect(values(result.state, "7")?.values.purchase_count).toBeGreaterThanOrEqual(4);
      expect(result.table.find((row) => row.id === 7)?.purchases).toBe(values(result.state, "7")?.values.purchase_count);
    });
  }
});
