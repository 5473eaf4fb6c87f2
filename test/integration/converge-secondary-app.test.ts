// A model whose primary source is in one postgres app and whose aggregated source is in another (each
// app its own slot and publication, on the same database). Config changes of the aggregated source's
// app alone (its column.exclude.list), of its aggregates, and a move of the source between the apps;
// compared with a fresh daemon on the last config (test/helpers/converge.ts).
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { converge, find, shopConfig, type ConvergenceScenario, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";

const DEBEZIUM = { "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "plugin.name": "pgoutput", "publication.autocreate.mode": "filtered" };

/** The shop config with purchases_table in an app of its own ("orders"), optionally excluding columns there. */
const twoApps = (exclude?: string, edit?: (objects: Obj[]) => void): Obj[] => {
  const objects = structuredClone(shopConfig());
  objects.splice(1, 0, { class: "app", id: "orders", type: "postgres", options: exclude === undefined ? {} : { debezium: { ...DEBEZIUM, "column.exclude.list": exclude } } });
  find(objects, "purchases_table", "source").appId = "orders";
  edit?.(objects);
  return objects;
};

const SCENARIOS: Record<string, ConvergenceScenario> = {
  "an unused column of the aggregated source's app excluded": { configs: [twoApps(), twoApps("public.purchases.sku")] },
  "an aggregated column excluded in the other app": { configs: [twoApps(), twoApps("public.purchases.amount")] },
  "the exclusion taken out in the other app": { configs: [twoApps("public.purchases.amount"), twoApps()] },
  "a count changed to a sum in the other app": { configs: [twoApps(), twoApps(undefined, (o) => Object.assign(find(o, "purchase_count").options as Obj, { column: "amount", aggregationMethod: "sum" }))] },
  "the aggregated source moved to the primary's app": { configs: [twoApps(), shopConfig()] },
  "the aggregated source moved to an app of its own": { configs: [shopConfig(), twoApps()] },
  "an aggregated source added on an app of its own": {
    configs: [
      twoApps(),
      twoApps(undefined, (o) =>
        o.push(
          { class: "app", id: "refunds_db", type: "postgres", options: {} },
          { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "refunds_db", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } },
          { class: "property", id: "refund_count", type: "integer", sourceId: "refunds_table", options: { column: "id", aggregationMethod: "count" } },
        ),
      ),
    ],
  },
};

describe("a model's aggregated source in another postgres app than its primary", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(inject("pgUrl"), "secondary_app");
  });
  afterEach(async () => {
    await db.drop();
  });

  for (const mode of ["restart", "reload"] as const) {
    it.each(Object.entries(SCENARIOS))(`by a ${mode}: %s`, { timeout: 120_000 }, async (_name, scenario) => {
      const result = await converge(db, scenario, mode);
      expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
      expect(result.table).toEqual(result.oracleTable);
    });
  }
});
