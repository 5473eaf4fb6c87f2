// An initial snapshot's progress on /metrics ends at its table's count: read and estimated both the
// rows read, whatever the statistics said at the start (a table never analyzed had an estimate of 0
// before 2026-12-03, and the dashboard's progress, read over estimated, stayed infinite; a stale one
// left it at 97 % or 104 % for the life of the process).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("the initial snapshot's progress", () => {
  const work = mkdtempSync(join(tmpdir(), "snapshot-progress-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("ends with estimated equal to the rows read, for a table never analyzed and one analyzed before rows were deleted", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "snapshot_progress");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text) WITH (autovacuum_enabled = false)`);
      await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 2500) g`);
      await db.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int) WITH (autovacuum_enabled = false)`);
      await db.query(`INSERT INTO orders SELECT g, 1 + g % 2500 FROM generate_series(1, 3000) g`);
      await db.query(`ANALYZE orders`);
      await db.query(`DELETE FROM orders WHERE id > 2000`);
      const config = join(work, "config.json");
      writeFileSync(
        config,
        JSON.stringify([
          { class: "app", id: "shop", type: "postgres", options: { connectionString: db.url, slot: "snapshot_progress", publication: "snapshot_progress" } },
          { class: "model", id: "users" },
          { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
          { class: "source", id: "orders_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "orders" }, mapping: { user_id: "user_id" } },
          { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
          { class: "property", id: "orders", type: "integer", sourceId: "orders_table", options: { column: "id", aggregationMethod: "count" } },
        ]),
      );
      const http = `127.0.0.1:${await freePort()}`;
      const metrics = async () => (await get(http, "/metrics")).body;
      daemon = startDaemon(["--config", config, "--state", join(work, "state")], http);
      await daemon.until("the snapshot applied", async () => (sample(await metrics(), 'grouparoo_records{model="users"}') === 2500 && sample(await metrics(), 'grouparoo_changes_applied_total{source="orders_table",op="snapshot"}') === 2000 ? true : undefined), 60_000);
      const text = await metrics();
      expect(sample(text, 'grouparoo_snapshot_rows_read{source="users_table",table="public.users"}')).toBe(2500);
      expect(sample(text, 'grouparoo_snapshot_rows_estimated{source="users_table",table="public.users"}')).toBe(2500);
      expect(sample(text, 'grouparoo_snapshot_rows_read{source="orders_table",table="public.orders"}')).toBe(2000);
      expect(sample(text, 'grouparoo_snapshot_rows_estimated{source="orders_table",table="public.orders"}')).toBe(2000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
