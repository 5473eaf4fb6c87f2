// grouparoo_replication_lag_seconds of a postgres-cdc stream that caught up and went quiet reads about
// 0. Before 2026-12-03 it kept the lag of the last change it applied: after a restart that caught up
// on a change committed while the daemon was down, it held that downtime (76 s in an SRE's trial) for
// as long as the tables stayed quiet, and GrouparooReplicationLagSecondsHigh (above 60 s for 5
// minutes) fired on a stream with nothing behind. The markers of commits and of the server's idle
// keepalives now count, as the changes do.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, killIfRunning, sample, startDaemon, waitFor, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("the replication lag in seconds of a stream that caught up", () => {
  const work = mkdtempSync(join(tmpdir(), "lag-idle-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("falls to about 0 once the changes committed while the daemon was down are applied", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "lag_idle");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
      await db.query(`INSERT INTO users VALUES (1, 'u1@example.com')`);
      const config = join(work, "config.json");
      writeFileSync(
        config,
        JSON.stringify([
          { class: "app", id: "shop", type: "postgres", options: { connectionString: db.url, slot: "lag_idle", publication: "lag_idle" } },
          { class: "model", id: "users" },
          { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
          { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
          { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
        ]),
      );
      const state = join(work, "state");
      const http = `127.0.0.1:${await freePort()}`;
      const metrics = async () => (await get(http, "/metrics")).body;
      daemon = startDaemon(["--config", config, "--state", state], http);
      await daemon.until("the snapshot applied", async () => (sample(await metrics(), 'grouparoo_records{model="users"}') === 1 ? true : undefined), 30_000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      // A change committed while the daemon is down, applied 8 s later by the next start.
      await db.query(`INSERT INTO users VALUES (2, 'u2@example.com')`);
      await new Promise((resolve) => setTimeout(resolve, 8_000));
      daemon = startDaemon(["--config", config, "--state", state], http);
      const started = daemon;
      await started.until("the change applied", async () => (sample(await metrics(), 'grouparoo_records{model="users"}') === 2 ? true : undefined), 30_000);
      // Caught up and quiet: the server's keepalive, once everything it sent is applied, brings it to about 0.
      const lag = await waitFor("the lag of the quiet stream below 2 s", async () => {
        const value = sample(await metrics(), 'grouparoo_replication_lag_seconds{stream="postgres:shop"}');
        return value !== undefined && value < 2 ? value : undefined;
      }, 45_000, 500);
      expect(lag).toBeLessThan(2);
      started.child.kill("SIGTERM");
      expect((await started.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
