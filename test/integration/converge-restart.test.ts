// Config changes applied by a restart converge: for each kind of change, the state and the destination
// table end exactly as a fresh daemon's on the new config over the same data (test/helpers/converge.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { converge } from "../helpers/converge.js";
import { SCENARIOS } from "../helpers/converge-scenarios.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("config changes applied by a restart", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "converge_restart");
  });
  afterEach(async () => {
    await db.drop();
  });

  it.each(Object.entries(SCENARIOS))("%s", { timeout: 120_000 }, async (_name, scenario) => {
    const result = await converge(db, scenario, "restart");
    expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
    // A remote field no longer mapped is left as the destination holds it (it is not cleared).
    const mapped = (rows: Record<string, unknown>[]) => rows.map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => !scenario.unmapped?.includes(column))));
    expect(mapped(result.table)).toEqual(mapped(result.oracleTable));
    for (const column of scenario.unmapped ?? []) expect(result.table.filter((row) => row[column] !== null).length).toBeGreaterThan(0);
    expect(result.table.length).toBeGreaterThan(0);
  });
});
