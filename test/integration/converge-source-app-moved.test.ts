// Sources moved to another app (a new app id, so a new slot and publication) are removed by their
// Runs while the new app's connector reads them whole from its initial snapshot. Before 2026-12-03
// the connector started at once: when its snapshot committed before the removal Runs started (about
// one reload in five), they removed what it had just read, and no Run read it again, so the state
// kept only the users written afterwards, for good. The connector now waits for those Runs. Here the
// Runs are held back until the snapshot has committed (or 5 s, when it is held itself), which made
// the old order lose the records every time.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listRuns, RUN_HOOKS } from "../../streams/runs.js";
import { dumpState, SHOP_DATA, SHOP_SCHEMA, settle, shopConfig, shopWrites, start, stopAll, type Obj, type Running } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** The shop config with its sources on app `appId` (slot and publication `slot`), its destination on an app of its own. */
function onApp(url: string, appId: string, slot: string, table: string): Obj[] {
  return [
    ...shopConfig().map((o) => {
      if (o.class === "app") return { ...o, id: appId, options: { connectionString: url, slot, publication: slot } };
      if (o.class === "source") return { ...o, appId };
      if (o.class === "destination") return { ...o, appId: "crm_db", options: { ...(o.options as Obj), table } };
      return o;
    }),
    { class: "app", id: "crm_db", type: "postgres", options: { connectionString: url } },
  ];
}

describe("sources moved to another app", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "source_app_moved");
  });
  afterEach(async () => {
    delete RUN_HOOKS.beforeBegin;
    await db.drop();
  });

  for (const mode of ["reload", "restart"] as const) {
    it(`are removed before the new app reads them, and end as a fresh daemon (${mode})`, { timeout: 180_000 }, async () => {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const work = mkdtempSync(join(tmpdir(), "source-app-moved-"));
      const file = join(work, "config.json");
      let running: Running | undefined;
      let oracle: Running | undefined;
      try {
        running = await start(file, onApp(db.url, "shop_a", `shop_a_slot_${mode}`, "crm"), join(work, "state"));
        for (const sql of shopWrites(1)) await db.query(sql);
        await settle(db, [running], "on shop_a");
        const before = running.daemon.state.countOf("records", "users");
        expect(before).toBeGreaterThan(10);

        // The removals wait until the new app's snapshot has committed, or 5 s (when the source is held
        // until they are done, nothing commits).
        const snapshotted: string[] = [];
        let waited = false;
        RUN_HOOKS.beforeBegin = async (run, store) => {
          if (!run.kind.startsWith("remove-")) return;
          const complete = () => (store.position("postgres:shop_b:snapshot")?.startsWith("complete:") ? true : undefined);
          const done = waited ? complete() === true : await waitFor("the snapshot of shop_b", async () => complete(), 5000).catch(() => false);
          waited = true;
          snapshotted.push(`${run.kind} ${run.target}: ${done ? "after the snapshot" : "before it"}`);
        };
        const next = onApp(db.url, "shop_b", `shop_b_slot_${mode}`, "crm");
        if (mode === "reload") {
          writeFileSync(file, JSON.stringify(next));
          expect(await running.daemon.reload("test")).toBe("applied");
        } else {
          await running.daemon.drain("SIGTERM");
          await running.daemon.finished;
          running = await start(file, next, running.state);
        }
        const store = running.daemon.state;
        expect(listRuns(store).map((r) => `${r.kind} ${r.target}`)).toEqual([
          "remove-property property lifetime_value",
          "remove-property property max_amount",
          "remove-property property purchase_count",
          "remove-source source purchases_table",
          "remove-source source users_table",
          // The records purchases_table has no rows for get their count and sum 0 (its snapshot brings the rest).
          "rebuild properties purchase_count, lifetime_value, max_amount",
        ]);
        // The Runs wait (the hook above): shop_b waits for them, and /readyz says so.
        expect(running.daemon.notReady()).toBe("sources waiting for the Runs removing what they read: shop_b");
        await db.query(`INSERT INTO users (id, email, name, vip) VALUES (14, 'u14@example.com', 'name14', true)`);
        await settle(db, [running], "on shop_b");
        expect(store.countOf("records", "users")).toBe(before + 2);
        expect(snapshotted).toEqual([
          "remove-property property lifetime_value: before it",
          "remove-property property max_amount: before it",
          "remove-property property purchase_count: before it",
          "remove-source source purchases_table: before it",
          "remove-source source users_table: before it",
        ]);
        delete RUN_HOOKS.beforeBegin;

        oracle = await start(join(work, "oracle.json"), onApp(db.url, "shop_b", `oracle_slot_${mode}`, "crm_oracle"), join(work, "oracle-state"));
        await settle(db, [oracle, running], "oracle and scenario");
        const dump = (r: Running) => dumpState(r.daemon.state, ["users"], ["crm"], ["high_value", "vips"], ["purchases_table"]);
        expect(dump(running)).toEqual(dump(oracle));
        const table = (await db.query(`SELECT * FROM crm ORDER BY id`)).rows;
        expect(table.length).toBe(before + 3);
        expect(table).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
      } finally {
        delete RUN_HOOKS.beforeBegin;
        await stopAll([running, oracle]);
        rmSync(work, { recursive: true, force: true });
      }
    });
  }
});
