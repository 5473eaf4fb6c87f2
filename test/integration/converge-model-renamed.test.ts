// A model renamed (its id changed; its sources, properties, groups and destination moved to the new
// id): the old model is removed whole and its sources read again on the new one. Before 2026-12-03 the
// removal dropped the records but kept the sources' rows, still attached to the records it dropped, and
// the re-read of the aggregated source found each row unchanged: every count and sum of the new model's
// records stayed 0 (and its groups on them empty), for good. Compared with a fresh daemon on the same data.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { concrete, dumpState, SHOP_DATA, SHOP_SCHEMA, shopConfig, shopWrites, start, stopAll, type Obj, type Running } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const people = (): Obj[] => structuredClone(shopConfig()).map((x) => (x.class === "model" ? { ...x, id: "people" } : x.modelId === "users" ? { ...x, modelId: "people" } : x));

describe("a model renamed", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "model_renamed");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "model-renamed-"));
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  /** The state holds `count` records of `model` (a user row written last is in), its Runs are done and its outbox delivered. */
  const settled = (r: Running, model: string, id: string) =>
    waitFor(`${model}/${id} applied, Runs done, outbox delivered`, async () => (r.daemon.state.getRecord(model, id) && r.daemon.runs?.pending().length === 0 && r.daemon.state.outboxDepth("crm") === 0 ? true : undefined), 60_000);

  for (const mode of ["restart", "reload"] as const) {
    it(`by a ${mode}: every record of the new model as a fresh daemon's, its aggregates and groups included`, { timeout: 120_000 }, async () => {
      const file = join(work, "config.json");
      let running: Running | undefined = await start(file, concrete(shopConfig(), db.url, "renamed", "crm"), join(work, "state"));
      let oracle: Running | undefined;
      try {
        await db.query(`INSERT INTO users (id, email, name) VALUES (700, 'u700@example.com', 'before')`);
        await settled(running, "users", "700");
        for (const sql of shopWrites(1)) await db.query(sql);
        await db.query(`INSERT INTO users (id, email, name) VALUES (701, 'u701@example.com', 'before')`);
        await settled(running, "users", "701");
        const next = concrete(people(), db.url, "renamed", "crm");
        if (mode === "restart") {
          await stopAll([running]);
          running = undefined;
          running = await start(file, next, join(work, "state"));
        } else {
          writeFileSync(file, JSON.stringify(next));
          expect(await running.daemon.reload("test")).toBe("applied");
        }
        // The source goes on changing while the new model's Runs go on (no user deleted: the destination
        // moves to the new model, which sends it every record again from nothing, so it cannot delete
        // there a record of the old model deleted meanwhile; see "Config changes" in the README).
        for (const sql of shopWrites(2).filter((sql) => !sql.startsWith("DELETE FROM users"))) await db.query(sql);
        await db.query(`INSERT INTO users (id, email, name) VALUES (702, 'u702@example.com', 'after')`);
        await settled(running, "people", "702");
        oracle = await start(join(work, "oracle.json"), concrete(people(), db.url, "renamed_oracle", "crm_oracle"), join(work, "oracle"));
        await settled(oracle, "people", "702");
        const dump = (r: Running) => dumpState(r.daemon.state, ["people", "users"], ["crm"], ["high_value", "vips"], ["purchases_table"]);
        expect({ ...dump(running), remote: null }).toEqual({ ...dump(oracle), remote: null });
        expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
        // User 7 has purchases 6, 16, 26 and 36 from the start (user_id = 1 + id % 10), none changed by the writes.
        expect(running.daemon.state.getRecord("people", "7")?.values.purchase_count).toBeGreaterThanOrEqual(4);
        expect(running.daemon.state.countOf("records", "users")).toBe(0);
        expect(running.daemon.state.countOf("members", "high_value")).toBeGreaterThan(0);
      } finally {
        await stopAll([running, oracle]);
      }
    });
  }
});
