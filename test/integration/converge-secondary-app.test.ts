// A model whose primary source is in one postgres app and whose aggregated source is in another (each
// app its own slot and publication, on the same database). Config changes of the aggregated source's
// app alone (its column.exclude.list), of its aggregates, and a move of the source between the apps;
// compared with a fresh daemon on the last config (test/helpers/converge.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUN_HOOKS } from "../../streams/runs.js";
import { concrete, converge, dumpState, find, scenariosFor, SHOP_DATA, SHOP_SCHEMA, settle, shopConfig, shopWrites, start, stopAll, type ConvergenceScenario, type Obj, type Running } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

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
  "the identifying property's type changed, the aggregated source in the other app": { configs: [twoApps(), twoApps(undefined, (o) => void (find(o, "user_id").type = "string"))] },
  "the primary source moved to the aggregated source's app": { configs: [twoApps(), twoApps(undefined, (o) => void (find(o, "users_table", "source").appId = "orders"))] },
  "the primary source moved to a third app": {
    configs: [twoApps(), twoApps(undefined, (o) => {
      o.splice(1, 0, { class: "app", id: "people_db", type: "postgres", options: {} });
      find(o, "users_table", "source").appId = "people_db";
    })],
  },
  "a unique property made plain, the aggregated source in the other app": { configs: [twoApps(), twoApps(undefined, (o) => void (find(o, "email").unique = false))] },
  "an aggregate's type changed in the other app": { configs: [twoApps(), twoApps(undefined, (o) => void (find(o, "max_amount").type = "integer"))] },
  "an aggregate removed in the other app": { configs: [twoApps(), twoApps(undefined, (o) => o.splice(o.indexOf(find(o, "max_amount")), 1))] },
  "an aggregate's filter changed in the other app": { configs: [twoApps(), twoApps(undefined, (o) => void (find(o, "lifetime_value").filters = [{ key: "state", op: "ne", match: "failed" }]))] },
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
    db = await createTestDatabase(testPgUrl(), "secondary_app");
  });
  afterEach(async () => {
    await db.drop();
  });

  // Each found a bug (2026-12-03): run by a restart and by a reload.
  const both = new Set(["an aggregated column excluded in the other app", "the aggregated source moved to an app of its own", "an aggregated source added on an app of its own"]);
  for (const mode of ["restart", "reload"] as const) {
    it.each(scenariosFor(mode, Object.entries(SCENARIOS), both))(`by a ${mode}: %s`, { timeout: 120_000 }, async (_name, scenario) => {
      const result = await converge(db, scenario, mode);
      expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
      expect(result.table).toEqual(result.oracleTable);
    });
  }
});

// Polling sources (a table import, a query import) on an app of their own, beside the cdc primary.
type Polling = { runsUnderWay?: number };
async function pollingSettled(running: Running, config: Obj[]): Promise<void> {
  const polling = config.filter((o) => o.class === "source" && String(o.type).endsWith("-import"));
  await waitFor("polling runs done", async () => {
    const generation = (running.daemon as unknown as { generation?: { sources: Polling[] } }).generation;
    if (!generation) return undefined;
    for (const s of generation.sources) if (typeof s.runsUnderWay === "number" && s.runsUnderWay > 0) return undefined;
    for (const o of polling) if (running.daemon.state.position(`poll:${String(o.appId)}:${String(o.id)}`) === undefined) return undefined;
    return true;
  }, 30_000);
}

const pollingApp = (appId: string): Obj => ({ class: "app", id: appId, type: "postgres", options: {} });
const refundRows = (appId: string, property: Obj = { options: { column: "amount", aggregationMethod: "sum" } }): Obj[] => [
  { class: "source", id: "refund_rows", type: "postgres-table-import", appId, modelId: "users", options: { table: "refunds", highWatermarkColumn: "id", batchSize: 4 }, mapping: { user_id: "user_id" } },
  { class: "property", id: "refunded", type: "float", sourceId: "refund_rows", ...property },
  { class: "schedule", id: "refund_rows_hourly", sourceId: "refund_rows", recurringFrequency: 3_600_000 },
];
const refundTotals = (appId: string, property: Obj = { options: { column: "refunded", aggregationMethod: "sum" } }): Obj[] => [
  { class: "source", id: "refund_totals", type: "postgres-query-import", appId, modelId: "users", options: { query: "SELECT user_id, sum(amount)::float8 AS refunded FROM refunds GROUP BY user_id" }, mapping: { user_id: "user_id" } },
  { class: "property", id: "refunded", type: "float", sourceId: "refund_totals", ...property },
  { class: "schedule", id: "refund_totals_hourly", sourceId: "refund_totals", recurringFrequency: 3_600_000 },
];
const withPolling = (...objects: Obj[]): Obj[] => [...twoApps(), ...objects];
const refundWrites = (step: number) => shopWrites(step).filter((sql) => !sql.startsWith("DELETE FROM refunds"));
const COUNT = { type: "integer", options: { column: "id", aggregationMethod: "count" } };
const FILTERED = { options: { column: "amount", aggregationMethod: "sum" }, filters: [{ key: "amount", op: "gt", match: 6 }] };

const POLLING: Record<string, ConvergenceScenario> = {
  "a table import on a third app, its sum changed to a count": { configs: [withPolling(pollingApp("refunds_db"), ...refundRows("refunds_db")), withPolling(pollingApp("refunds_db"), ...refundRows("refunds_db", COUNT))] },
  "a table import on a third app, its filter changed": { configs: [withPolling(pollingApp("refunds_db"), ...refundRows("refunds_db")), withPolling(pollingApp("refunds_db"), ...refundRows("refunds_db", FILTERED))] },
  "a table import added on a third app": { configs: [twoApps(), withPolling(pollingApp("refunds_db"), ...refundRows("refunds_db"))] },
  "a table import moved to a third app": { configs: [withPolling(...refundRows("orders")), withPolling(pollingApp("refunds_db"), ...refundRows("refunds_db"))] },
  "a query import on a third app, its sum changed to a count": { configs: [withPolling(pollingApp("refunds_db"), ...refundTotals("refunds_db")), withPolling(pollingApp("refunds_db"), ...refundTotals("refunds_db", { ...COUNT, options: { column: "refunded", aggregationMethod: "count" } }))] },
  "a query import moved to a third app": { configs: [withPolling(...refundTotals("orders")), withPolling(pollingApp("refunds_db"), ...refundTotals("refunds_db"))] },
};

describe("a model's polling sources on another app than its primary", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "secondary_polling");
  });
  afterEach(async () => {
    await db.drop();
  });

  for (const mode of ["restart", "reload"] as const) {
    it.each(scenariosFor(mode, Object.entries(POLLING), new Set()))(`by a ${mode}: %s`, { timeout: 120_000 }, async (_name, scenario) => {
      const result = await converge(db, { writes: refundWrites, ...scenario, settled: pollingSettled, writesBeforeChange: true }, mode);
      expect(result.state).toEqual(result.oracleState);
      expect(result.table).toEqual(result.oracleTable);
    });
  }
});

// The move of the aggregated source to an app of its own undone while its rebuild (records with no rows:
// count and sum 0) waits: the state ends as a fresh daemon's on the first config.
describe("an aggregated source's move to an app of its own, undone part-way", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "secondary_undone");
  });
  afterEach(async () => {
    delete RUN_HOOKS.beforeBegin;
    await db.drop();
  });

  it("ends as a fresh daemon on the config it ends on (reload)", { timeout: 120_000 }, async () => {
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    const work = mkdtempSync(join(tmpdir(), "secondary-undone-"));
    const file = join(work, "config.json");
    const a = concrete(shopConfig(), db.url, "scenario", "crm");
    const b = concrete(twoApps(), db.url, "scenario", "crm");
    let running: Running | undefined;
    let oracle: Running | undefined;
    try {
      running = await start(file, a, join(work, "state"));
      for (const sql of shopWrites(1)) await db.query(sql);
      await settle(db, [running], "config A");
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const held: string[] = [];
      RUN_HOOKS.beforeBegin = async (run) => {
        if (run.kind !== "rebuild" || held.length > 0) return;
        held.push(run.target);
        await gate;
      };
      writeFileSync(file, JSON.stringify(b, null, 1));
      expect(await running.daemon.reload("test")).toBe("applied");
      await waitFor("B's rebuild held", async () => (held.length > 0 ? true : undefined), 30_000);
      writeFileSync(file, JSON.stringify(a, null, 1));
      const reloaded = running.daemon.reload("test");
      setTimeout(release, 300);
      expect(await reloaded).toBe("applied");
      delete RUN_HOOKS.beforeBegin;
      for (const sql of shopWrites(2)) await db.query(sql);
      await settle(db, [running], "config A again");
      oracle = await start(join(work, "oracle.json"), concrete(shopConfig(), db.url, "oracle", "crm_oracle"), join(work, "oracle-state"));
      await settle(db, [oracle, running], "oracle and scenario");
      const dump = (r: Running) => dumpState(r.daemon.state, ["users"], ["crm"], ["high_value", "vips"], ["purchases_table"]);
      expect({ ...dump(running), remote: null }).toEqual({ ...dump(oracle), remote: null });
      expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
    } finally {
      delete RUN_HOOKS.beforeBegin;
      await stopAll([running, oracle]);
      rmSync(work, { recursive: true, force: true });
    }
  });
});
