// A destination whose app is pointed at another database (the app's id unchanged) is sent every record
// there from nothing, as a fresh daemon on the new config would; before 2026-12-03 nothing was planned,
// and the new database got only the records that changed afterwards. A change of how the app is
// reached (its password) plans nothing.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listRuns } from "../../streams/runs.js";
import { concrete, dumpState, SHOP_DATA, SHOP_SCHEMA, settle, shopConfig, shopWrites, start, stopAll, type Obj, type Running } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** The shop config with its destination on an app of its own, `crm_db`, reaching `crmUrl`. */
function withCrmApp(objects: Obj[], crmUrl: string): Obj[] {
  return [
    ...objects.map((o) => (o.class === "destination" ? { ...o, appId: "crm_db" } : o)),
    { class: "app", id: "crm_db", type: "postgres", options: { connectionString: crmUrl } },
  ];
}

describe("a destination's app pointed elsewhere", () => {
  let db: TestDatabase;
  let crm2: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "app_moved");
    crm2 = await createTestDatabase(testPgUrl(), "app_moved_crm");
  });
  afterEach(async () => {
    await db.drop();
    await crm2.drop();
  });

  it("sends every record to where it now points, and ends as a fresh daemon there", { timeout: 120_000 }, async () => {
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    for (const sql of SHOP_SCHEMA.filter((s) => s.includes("TABLE crm"))) await crm2.query(sql);
    const work = mkdtempSync(join(tmpdir(), "app-moved-"));
    const file = join(work, "config.json");
    const at = (crmUrl: string) => withCrmApp(concrete(shopConfig(), db.url, "scenario", "crm"), crmUrl);
    const withPassword = (url: string, password: string) => {
      const u = new URL(url);
      u.password = password;
      return u.toString();
    };
    let running: Running | undefined;
    let oracle: Running | undefined;
    try {
      running = await start(file, at(db.url), join(work, "state"));
      await settle(db, [running], "on the first database");
      const store = running.daemon.state;
      const first = (await db.query(`SELECT count(*)::int AS n FROM crm`)).rows[0]?.n as number;
      expect(first).toBeGreaterThan(10);

      // Reached another way (a password given), the same database: no Run.
      writeFileSync(file, JSON.stringify(at(withPassword(db.url, "not-needed"))));
      expect(await running.daemon.reload("test")).toBe("applied");
      expect(listRuns(store)).toEqual([]);

      writeFileSync(file, JSON.stringify(at(crm2.url)));
      expect(await running.daemon.reload("test")).toBe("applied");
      expect(listRuns(store).map((r) => `${r.kind} ${r.target}: ${r.reason}`)).toEqual(["export destination crm: its type, app (or where the app points) or options changed: every record is sent again"]);
      for (const sql of shopWrites(1)) await db.query(sql);
      await settle(db, [running], "on the second database");

      oracle = await start(join(work, "oracle.json"), withCrmApp(concrete(shopConfig(), db.url, "oracle", "crm_oracle"), crm2.url), join(work, "oracle-state"));
      await settle(db, [oracle, running], "oracle and scenario");
      const dump = (r: Running) => dumpState(r.daemon.state, ["users"], ["crm"], ["high_value", "vips"], ["purchases_table"]);
      expect(dump(running)).toEqual(dump(oracle));
      const table = (await crm2.query(`SELECT * FROM crm ORDER BY id`)).rows;
      expect(table.length).toBeGreaterThan(10);
      expect(table).toEqual((await crm2.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
    } finally {
      await stopAll([running, oracle]);
      rmSync(work, { recursive: true, force: true });
    }
  });
});
