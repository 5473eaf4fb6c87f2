// Issue #12 items 5 and 7: --max-batch-size bounds the batches and the memory (the sources pause under
// a 60,000-row backlog), and a drain that starts while they are paused never logs "resuming sources"
// (the sources are stopping, not resuming).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { get, sample, startDaemon, waitFor, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

describe("a drain under backpressure", () => {
  let db: TestDatabase;
  let work: string;
  let daemon: DaemonProcess | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "drain_bp");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
    await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 60000) g`);
    work = mkdtempSync(join(tmpdir(), "drain-bp-"));
    writeFileSync(
      join(work, "config.yml"),
      `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: drain_bp_slot, publication: drain_bp_pub } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, sourceId: users_table, options: { column: email } }
- { class: group, id: example, modelId: users, rules: [{ propertyId: email, op: like, match: "%@example.com" }] }
`,
    );
  });
  afterAll(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill("SIGKILL");
      await daemon.exited;
    }
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("pauses the sources under a backlog, keeps batches within --max-batch-size, and drains without 'resuming'", { timeout: 90_000 }, async () => {
    const http = `127.0.0.1:${await freePort()}`;
    daemon = startDaemon(["--config", join(work, "config.yml"), "--state", join(work, "state"), "--max-batch-size", "500"], http);
    const running = daemon;
    await waitFor("paused", async () => (running.logs().includes('"msg":"backpressure: pausing sources"') ? true : undefined), 60_000);
    // The sources start while the listener's thread boots: a backlog may pause them before it listens.
    const metrics = await running.until("/metrics", async () => (await get(http, "/metrics").catch(() => undefined))?.body);
    const count = sample(metrics, "grouparoo_batch_changes_count") ?? 0;
    expect(count).toBeGreaterThan(0);
    expect(sample(metrics, 'grouparoo_batch_changes_bucket{le="500"}')).toBe(count);
    running.child.kill("SIGTERM");
    expect((await running.exited).code).toBe(0);
    const logs = running.logs();
    const drainAt = logs.indexOf('"msg":"draining: not ready, stopping sources, committing the batch in flight"');
    expect(drainAt).toBeGreaterThan(0);
    expect(logs.slice(drainAt)).not.toContain("resuming sources");
  });
});
