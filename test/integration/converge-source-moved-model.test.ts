// A source of many rows per record moved to another model (its id kept; the model it leaves stays):
// the old model's removal of its rows (remove-source) drops every row of the source. Before
// 2026-12-03 it also dropped, without taking them out of the records they reached, the rows the source
// streamed under the new model meanwhile: a purchase of a customer created meanwhile stayed in the
// customer's count and sum, and the source's re-read on the new model counted it again. Forced here by
// holding the removal until the stream has applied such rows; compared with a fresh daemon.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RUN_HOOKS } from "../../streams/runs.js";
import { changeConfig, concrete, dumpDifferences, dumpState, holdRunUntilStreamed, SHOP_DATA, SHOP_SCHEMA, settledOn as settled, shopConfig, shopWrites, start, stopAll, type Obj, type Running } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** The shop, and a second model (customers) whose primary source reads the same users table. */
const before = (): Obj[] => [
  ...shopConfig(),
  { class: "model", id: "customers" },
  { class: "source", id: "customers_table", type: "postgres-cdc", appId: "shop", modelId: "customers", options: { table: "users" }, mapping: { id: "customer_id" } },
  { class: "property", id: "customer_id", type: "integer", unique: true, sourceId: "customers_table", options: { column: "id" } },
  { class: "property", id: "customer_name", type: "string", sourceId: "customers_table", options: { column: "name" } },
];

/** The purchases (their source, properties and the group on them) moved to customers; the CRM keeps the users' own fields. */
const after = (): Obj[] =>
  before().flatMap((o): Obj[] => {
    if (o.id === "purchases_table") return [{ ...o, modelId: "customers", mapping: { user_id: "customer_id" } }];
    if (o.class === "property" && o.sourceId === "purchases_table") return [{ ...o }];
    if (o.id === "high_value") return [{ ...o, modelId: "customers" }];
    if (o.class === "destination") return [{ ...o, mapping: { id: "user_id", email: "email", name: "name" }, destinationGroupMemberships: { VIP: "vips" } }];
    return [o];
  });

describe("a source of many rows per record moved to another model", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "source_moved_model");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "source-moved-model-"));
  });
  afterEach(async () => {
    delete RUN_HOOKS.beforeBegin;
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  for (const mode of ["reload", "restart"] as const) {
    it(`by a ${mode}: what it streams before its rows are removed from the old model is counted once, as by a fresh daemon`, { timeout: 120_000 }, async () => {
      const file = join(work, "config.json");
      let running: Running | undefined = await start(file, concrete(before(), db.url, "moved", "crm"), join(work, "state"));
      let oracle: Running | undefined;
      try {
        for (const sql of shopWrites(1)) await db.query(sql);
        await db.query(`INSERT INTO users (id, email, name) VALUES (701, 'u701@example.com', 'before')`);
        await settled(running, "users", "701");
        await settled(running, "customers", "701");

        // The removal of the source's rows waits until the stream has applied, under model customers, a
        // new customer's purchase (201, purchase 250 of 42); or 8 s, when nothing streams before.
        const seen: string[] = [];
        holdRunUntilStreamed("remove-source", "the stream under model customers", (store) => store.getRecord("customers", "201")?.values.lifetime_value === 42, seen);
        const previous = running;
        running = undefined;
        running = await changeConfig(mode, previous, file, concrete(after(), db.url, "moved", "crm"));
        for (const sql of shopWrites(2).filter((sql) => !sql.startsWith("DELETE FROM users"))) await db.query(sql);
        await db.query(`INSERT INTO users (id, email, name) VALUES (702, 'u702@example.com', 'after')`);
        await settled(running, "customers", "702");

        oracle = await start(join(work, "oracle.json"), concrete(after(), db.url, "moved_oracle", "crm_oracle"), join(work, "oracle"));
        await settled(oracle, "customers", "702");
        const dump = (r: Running) => ({ ...dumpState(r.daemon.state, ["users", "customers"], ["crm"], ["high_value", "vips"], ["purchases_table"]), remote: null });
        expect(dumpDifferences(dump(running), dump(oracle))).toEqual([]);
        expect(dump(running)).toEqual(dump(oracle));
        expect(running.daemon.state.getRecord("customers", "201")?.values).toMatchObject({ lifetime_value: 42, purchase_count: 1, max_amount: 42 });
        // Held until the removal is done, the source streamed nothing under the new model before it.
        expect(seen).toEqual(["nothing streamed before the removal"]);
        // ltv and purchases are no longer mapped: the destination keeps what they held (see "Config changes").
        expect((await db.query(`SELECT id, email, name, segments FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT id, email, name, segments FROM crm_oracle ORDER BY id`)).rows);
      } finally {
        await stopAll([running, oracle]);
      }
    });
  }
});
