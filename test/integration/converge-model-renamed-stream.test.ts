// A model renamed while its sources stream: the old model's removal (remove-model) drops the rows of its
// sources, which the new model keeps (a source moved to another model is read again there). Changes
// that the sources streamed under the new model before that removal reached them were dropped with the
// old rows without leaving the new model's records: a purchase of a user created meanwhile stayed in
// the user's count and sum, and the re-read then added it again (lifetime_value 84 where a fresh daemon
// has 42: seen once when two services files ran at once, and forced here by holding the removal until
// the stream has applied those changes). A purchase changed under the new model while its row was
// still attached to the old model's record was taken as one of the new record's rows too. Compared
// with a fresh daemon on the same data.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../state/store.js";
import { RUN_HOOKS } from "../../streams/runs.js";
import { changeConfig, concrete, dumpDifferences, dumpState, holdRunUntilStreamed, SHOP_DATA, SHOP_SCHEMA, settledOn as settled, shopConfig, shopWrites, start, stopAll, type Obj, type Running } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** A purchase's stored row, by its id. */
function purchase(store: Store, id: number): Record<string, unknown> | undefined {
  for (const [, stored] of store.rowsOf("purchases_table")) if (Number(stored.row.id) === id) return stored.row;
  return undefined;
}

const people = (): Obj[] => structuredClone(shopConfig()).map((x) => (x.class === "model" ? { ...x, id: "people" } : x.modelId === "users" ? { ...x, modelId: "people" } : x));

describe("a model renamed while its sources stream", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "model_renamed_stream");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "model-renamed-stream-"));
  });
  afterEach(async () => {
    delete RUN_HOOKS.beforeBegin;
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  for (const mode of ["reload", "restart"] as const) {
    it(`by a ${mode}: what streams in before the old model's removal is counted once, as by a fresh daemon`, { timeout: 120_000 }, async () => {
      const file = join(work, "config.json");
      let running: Running | undefined = await start(file, concrete(shopConfig(), db.url, "renamed", "crm"), join(work, "state"));
      let oracle: Running | undefined;
      try {
        for (const sql of shopWrites(1)) await db.query(sql);
        await db.query(`INSERT INTO users (id, email, name) VALUES (701, 'u701@example.com', 'before')`);
        await settled(running, "users", "701");

        // The removal of model users waits until the stream has applied, under model people, a new user
        // with a purchase (201, purchase 250 of 42) and a change of user 4 then of its purchase 3 (stored
        // attached to users/4); or 8 s, when nothing streams before the removal is done.
        const seen: string[] = [];
        holdRunUntilStreamed("remove-model", "the stream under model people", (store) => store.getRecord("people", "201")?.values.lifetime_value === 42 && store.getRecord("people", "4")?.values.name === "streamed" && Number(purchase(store, 3)?.amount) >= 23, seen);
        const previous = running;
        running = undefined;
        running = await changeConfig(mode, previous, file, concrete(people(), db.url, "renamed", "crm"));
        await db.query(`UPDATE users SET name = 'streamed' WHERE id = 4`);
        await db.query(`UPDATE purchases SET amount = amount + 1 WHERE id = 3`);
        for (const sql of shopWrites(2).filter((sql) => !sql.startsWith("DELETE FROM users"))) await db.query(sql);
        await db.query(`INSERT INTO users (id, email, name) VALUES (702, 'u702@example.com', 'after')`);
        await settled(running, "people", "702");
        // Held until the removal is done, the sources streamed nothing under the new model before it.
        expect(seen).toEqual(["nothing streamed before the removal"]);

        oracle = await start(join(work, "oracle.json"), concrete(people(), db.url, "renamed_oracle", "crm_oracle"), join(work, "oracle"));
        await settled(oracle, "people", "702");
        const dump = (r: Running) => ({ ...dumpState(r.daemon.state, ["people", "users"], ["crm"], ["high_value", "vips"], ["purchases_table"]), remote: null });
        expect(dumpDifferences(dump(running), dump(oracle))).toEqual([]);
        expect(dump(running)).toEqual(dump(oracle));
        expect(running.daemon.state.getRecord("people", "201")?.values).toMatchObject({ lifetime_value: 42, purchase_count: 1, max_amount: 42 });
        expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
      } finally {
        await stopAll([running, oracle]);
      }
    });
  }
});
