// A config change undone part-way by a reload converges, on real Postgres: a daemon on the shop config
// (3,012 users) reloads a config that changes an aggregate's filter and a group's rules while its
// destination table is locked, so that with an outbox bound of 100 the first Run holds after its first
// chunk; then the old config comes back by another reload, the source changes, the lock goes, and once
// everything has settled the state and the destination table equal a fresh daemon's on the old config.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listRuns } from "../../streams/runs.js";
import { concrete, dumpState, find, SHOP_DATA, SHOP_SCHEMA, settle, shopConfig, shopWrites, start, type Obj, type Running } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("a config change undone part-way, by a reload", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "converge_undone");
  });
  afterEach(async () => {
    await db.drop();
  });

  it("ends as a fresh daemon on the config it ends on", { timeout: 120_000 }, async () => {
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    await db.query(`INSERT INTO users (id, email, name, vip) SELECT g, 'm' || g || '@example.com', 'many' || g, g % 2 = 0 FROM generate_series(1000, 3999) g`);
    await db.query(`INSERT INTO purchases SELECT 1000 + g, 1000 + g % 3000, g % 200, 0, CASE WHEN g % 3 = 0 THEN 'failed' ELSE 'successful' END, 'sku1', '2026-01-01T00:00:00Z' FROM generate_series(1, 6000) g`);
    const work = mkdtempSync(join(tmpdir(), "converge-undone-"));
    const file = join(work, "config.json");
    const a = concrete(shopConfig(), db.url, "scenario", "crm");
    const b = structuredClone(a);
    find(b, "lifetime_value").filters = [{ key: "state", op: "eq", match: "failed" }];
    find(b, "high_value").rules = [{ propertyId: "lifetime_value", op: "gte", match: 20 }];
    const lock = new pg.Client({ connectionString: db.url });
    let running: Running | undefined;
    let oracle: Running | undefined;
    try {
      running = await start(file, a, join(work, "state"), { outboxBound: 100 });
      await settle(db, [running], "config A");
      const store = running.daemon.state;

      // The destination table locked: nothing is delivered, and B's first Run holds after one chunk.
      await lock.connect();
      await lock.query("BEGIN");
      await lock.query("LOCK TABLE crm IN ACCESS EXCLUSIVE MODE");
      writeConfig(file, b);
      expect(await running.daemon.reload("test")).toBe("applied");
      const held = await waitFor("a Run of config B part-way", async () => listRuns(store).find((r) => r.state === "running" && r.processed > 0 && r.total !== null && r.processed < r.total), 30_000, 20);
      expect(held.kind).toBe("rebuild");

      // Undone: A again, while B's Run is part-way; the source changes meanwhile.
      writeConfig(file, a);
      expect(await running.daemon.reload("test")).toBe("applied");
      for (const sql of shopWrites(1)) await db.query(sql);
      const redone = listRuns(store).filter((r) => r.state === "queued" || r.state === "running");
      expect(redone.map((r) => `${r.kind} ${r.target}`)).toEqual(["rebuild property lifetime_value", "backfill group high_value"]);
      expect(redone.every((r) => r.reason.startsWith("a change to it was cut short"))).toBe(true);
      await lock.query("COMMIT");
      await settle(db, [running], "config A again");

      oracle = await start(join(work, "oracle.json"), concrete(shopConfig(), db.url, "oracle", "crm_oracle"), join(work, "oracle-state"));
      await settle(db, [oracle, running], "oracle and scenario");
      const dump = (r: Running) => dumpState(r.daemon.state, ["users"], ["crm"], ["high_value", "vips"], ["purchases_table"]);
      expect({ ...dump(running), remote: null }).toEqual({ ...dump(oracle), remote: null });
      const table = (await db.query(`SELECT * FROM crm ORDER BY id`)).rows;
      expect(table.length).toBeGreaterThan(3000);
      expect(table).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
    } finally {
      await lock.end().catch(() => undefined);
      for (const r of [running, oracle]) {
        if (!r) continue;
        await r.daemon.drain("SIGTERM");
        await r.daemon.finished;
      }
      rmSync(work, { recursive: true, force: true });
    }
  });
});

function writeConfig(file: string, objects: Obj[]): void {
  writeFileSync(file, JSON.stringify(objects, null, 1));
}
