// Config changes over polling sources (postgres-query-import, postgres-table-import) beside
// postgres-cdc sources converge: after a restart or a reload, the state and the destination table end
// as a fresh daemon's on the new config over the same data.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { converge, shopConfig, shopWrites, type ConvergenceScenario, type Obj, type Running } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import type { PostgresPollingSource } from "../../connectors/postgres/polling.js";
import { testPgUrl } from "../services/use.js";

type Polling = PostgresPollingSource & { ran?: boolean };

/** Waits until every polling connector of the daemon has no run under way and every polling source has a position. */
async function pollingSettled(running: Running, config: Obj[]): Promise<void> {
  const polling = config.filter((o) => o.class === "source" && String(o.type).startsWith("postgres-") && String(o.type).endsWith("-import"));
  await waitFor("polling runs done", async () => {
    const generation = (running.daemon as unknown as { generation?: { sources: Polling[] } }).generation;
    if (!generation) return undefined;
    for (const s of generation.sources) if (typeof s.runsUnderWay === "number" && s.runsUnderWay > 0) return undefined;
    for (const o of polling) if (running.daemon.state.position(`poll:${String(o.appId)}:${String(o.id)}`) === undefined) return undefined;
    return true;
  }, 30_000);
}

type Scenario = Pick<ConvergenceScenario, "configs" | "writes">;

/** converge, waiting for the polling runs too, each config's writes made before the change to it. */
const convergePolling = (db: TestDatabase, scenario: Scenario, mode: "restart" | "reload") =>
  converge(db, { writes: () => [], ...scenario, settled: pollingSettled, writesBeforeChange: true }, mode);

const refunds = (query: string): Obj[] => [
  { class: "source", id: "refund_totals", type: "postgres-query-import", appId: "shop", modelId: "users", options: { query }, mapping: { user_id: "user_id" } },
  { class: "property", id: "refunded", type: "float", sourceId: "refund_totals", options: { column: "refunded", aggregationMethod: "sum" } },
  { class: "schedule", id: "refunds_hourly", sourceId: "refund_totals", recurringFrequency: 3_600_000 },
];
const withRefunds = (query: string): Obj[] => [...shopConfig(), ...refunds(query)];

const refundRows = (table = "refunds"): Obj[] => [
  { class: "source", id: "refund_rows", type: "postgres-table-import", appId: "shop", modelId: "users", options: { table, highWatermarkColumn: "id", batchSize: 4 }, mapping: { user_id: "user_id" } },
  { class: "property", id: "refunded", type: "float", sourceId: "refund_rows", options: { column: "amount", aggregationMethod: "sum" } },
  { class: "schedule", id: "refund_rows_hourly", sourceId: "refund_rows", recurringFrequency: 3_600_000 },
];
const lifetimeFromQuery = (): Obj[] => [
  ...shopConfig().filter((o) => o.id !== "lifetime_value"),
  { class: "source", id: "ltv_totals", type: "postgres-query-import", appId: "shop", modelId: "users", options: { query: "SELECT user_id, sum(amount)::float8 AS ltv FROM purchases WHERE state = 'successful' GROUP BY user_id" }, mapping: { user_id: "user_id" } },
  { class: "property", id: "lifetime_value", type: "float", sourceId: "ltv_totals", options: { column: "ltv" } },
  { class: "schedule", id: "ltv_hourly", sourceId: "ltv_totals", recurringFrequency: 3_600_000 },
];
/** The shop's writes, its refunds only inserted (a table import does not see deletes). */
const writes = (step: number) => shopWrites(step).filter((sql) => !sql.startsWith("DELETE FROM refunds"));

const SCENARIOS: Record<string, Scenario> = {
  "a query import's query changed": {
    configs: [
      withRefunds("SELECT user_id, sum(amount)::float8 AS refunded FROM refunds GROUP BY user_id"),
      withRefunds("SELECT user_id, sum(amount)::float8 AS refunded FROM refunds WHERE amount > 6 GROUP BY user_id"),
    ],
    writes,
  },
  "a query import added": {
    configs: [shopConfig(), withRefunds("SELECT user_id, sum(amount)::float8 AS refunded FROM refunds GROUP BY user_id")],
    writes,
  },
  "a query import removed": {
    configs: [withRefunds("SELECT user_id, sum(amount)::float8 AS refunded FROM refunds GROUP BY user_id"), shopConfig()],
    writes,
  },
  "a property moved from a cdc source to a query import": {
    configs: [shopConfig(), lifetimeFromQuery()],
    writes,
  },
  "a property moved from a query import to a cdc source": {
    configs: [lifetimeFromQuery(), shopConfig()],
    writes,
  },
  "a table import added": {
    configs: [shopConfig(), [...shopConfig(), ...refundRows()]],
    writes,
  },
  "a table import's table changed": {
    configs: [[...shopConfig(), ...refundRows()], [...shopConfig(), ...refundRows("purchases")]],
    writes,
  },
  "a table import's batchSize changed": {
    configs: [[...shopConfig(), ...refundRows()], [...shopConfig(), ...refundRows().map((o) => (o.id === "refund_rows" ? { ...o, options: { ...(o.options as Obj), batchSize: 1000 } } : o))]],
    writes,
  },
  "a table import removed": {
    configs: [[...shopConfig(), ...refundRows()], shopConfig()],
    writes,
  },
};

describe("config changes over polling sources", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "converge_polling");
  });
  afterEach(async () => {
    await db.drop();
  });
  for (const mode of ["restart", "reload"] as const) {
    it.each(Object.entries(SCENARIOS))(`%s (${mode})`, { timeout: 120_000 }, async (_name, scenario) => {
      const result = await convergePolling(db, scenario, mode);
      expect(result.state).toEqual(result.oracleState);
      expect(result.table).toEqual(result.oracleTable);
    });
  }
});
