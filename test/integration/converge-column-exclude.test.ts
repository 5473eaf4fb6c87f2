// A postgres app's column.exclude.list changed (Debezium's key under options.debezium): the columns it
// names are dropped from every row its postgres-cdc sources read, so a fresh daemon on the new config
// reads null for a property on one (and stores its rows without it). Before 2026-12-03 the change
// planned no Run: the records kept the values read before (or stayed null once the exclusion was
// taken out) until their rows changed. The sources' definitions now record what their app leaves out,
// and a change of it reads them again; compared with a fresh daemon (test/helpers/converge.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { converge, find, shopConfig, type ConvergenceScenario, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const excluding = (list: string): Obj[] => {
  const objects = structuredClone(shopConfig());
  (find(objects, "shop", "app").options as Obj).debezium = {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "plugin.name": "pgoutput",
    "publication.autocreate.mode": "filtered",
    "column.exclude.list": list,
  };
  return objects;
};

const SCENARIOS: Record<string, ConvergenceScenario> = {
  "a primary source's column excluded": { configs: [shopConfig(), excluding("public.users.name")] },
  "the exclusion taken out": { configs: [excluding("public.users.name"), shopConfig()] },
  "an aggregated column excluded": { configs: [shopConfig(), excluding("public.purchases.amount")] },
};

const values = (state: Record<string, unknown>, id: string) => (state.records as Record<string, { values: Record<string, unknown> }>)[`users/${id}`]?.values;

describe("a postgres app's column.exclude.list changed", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "column_exclude");
  });
  afterEach(async () => {
    await db.drop();
  });

  for (const mode of ["restart", "reload"] as const) {
    it.each(Object.entries(SCENARIOS))(`by a ${mode}: %s`, { timeout: 120_000 }, async (name, scenario) => {
      const result = await converge(db, scenario, mode);
      expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
      expect(result.table).toEqual(result.oracleTable);
      const user1 = values(result.state, "1");
      if (name === "a primary source's column excluded") expect(user1?.name).toBeNull();
      if (name === "the exclusion taken out") expect(user1?.name).toBe("name1");
      if (name === "an aggregated column excluded") expect([user1?.max_amount, user1?.lifetime_value]).toEqual([null, 0]);
    });
  }
});
