// A webhook that answers 503 until the outbox has filled and the sources have paused, then 429 with
// Retry-After, then recovers, while rows keep arriving in Postgres: the outbox fills to its bound, the
// sources pause (memory stays bounded), and once the webhook recovers everything is delivered: nothing
// lost, the remote state exact.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, sample, startDaemon, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { startReceiver } from "../helpers/remote.js";
import { testPgUrl } from "../services/use.js";

const ROWS = 1500;
const BOUND = 200;

describe("webhook outage", () => {
  const work = mkdtempSync(join(tmpdir(), "outage-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("pauses the sources at the outbox bound and delivers everything after 503s and 429s", { timeout: 180_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "outage");
    const receiver = await startReceiver("outage-secret");
    const http = `127.0.0.1:${await freePort()}`;
    let daemon: ReturnType<typeof startDaemon> | undefined;
    // Down (503) until the test has seen the sources paused, then 429 with Retry-After three times.
    let down = true;
    let tooMany = 0;
    receiver.respond = () => {
      if (down) return { status: 503 };
      if (tooMany < 3) {
        tooMany += 1;
        return { status: 429, headers: { "retry-after": "1" } };
      }
      return { status: 200 };
    };
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
      writeFileSync(
        join(work, "config.yml"),
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", snapshot: no_data } }
- { class: app, id: hooks, type: webhook, options: { url: "${receiver.url}", secret: outage-secret } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, sourceId: users_table, options: { column: email } }
- { class: destination, id: crm, type: webhook, appId: hooks, modelId: users, collection: model, syncMode: sync, options: { batchSize: 50 }, mapping: { id: user_id, email: email } }
`,
      );
      daemon = startDaemon(
        ["--config", join(work, "config.yml"), "--state", join(work, "state"), "--outbox-bound", String(BOUND), "--max-attempts", "1000", "--max-backoff-ms", "2000", "--max-batch-size", "100"],
        http,
      );
      await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined));
      // Each transaction is read before the next is written, until the sources pause: what was read
      // before the pause is applied whatever the machine's load, so the pause must come before the end.
      let paused = false;
      for (let i = 0; i < ROWS; i += 100) {
        await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series($1::int, $2::int) g`, [i + 1, i + 100]);
        if (paused) continue;
        paused = await waitFor(`row ${i + 100} applied or the sources paused`, async () => {
          const text = (await get(http, "/metrics")).body;
          if (sample(text, "grouparoo_sources_paused") === 1) return true;
          return (sample(text, 'grouparoo_records{model="users"}') ?? 0) >= i + 100 ? false : undefined;
        }, 20_000);
      }
      // The outbox reaches its bound and the sources pause while the webhook is down.
      await waitFor("sources paused", async () => (sample((await get(http, "/metrics")).body, "grouparoo_sources_paused") === 1 ? true : undefined), 20_000);
      await new Promise((r) => setTimeout(r, 2000)); // the changes read before the pause settle
      const during: { records: number; depth: number; rss: number }[] = [];
      for (let i = 0; i < 4; i += 1) {
        const text = (await get(http, "/metrics")).body;
        during.push({
          records: sample(text, 'grouparoo_records{model="users"}') ?? -1,
          depth: sample(text, 'grouparoo_outbox_depth{destination="crm"}') ?? -1,
          rss: sample(text, "grouparoo_process_resident_memory_bytes") ?? -1,
        });
        await new Promise((r) => setTimeout(r, 1000));
      }
      down = false;
      // Paused: nothing more is read, so records and the outbox stop growing (the bound is passed only
      // by the changes already read when the sources paused).
      for (const d of during) {
        expect(d.records).toBeLessThan(ROWS);
        expect(d.depth).toBeGreaterThanOrEqual(BOUND);
        expect(d.depth).toBeLessThan(ROWS);
        expect(d.rss).toBeLessThan(400 * 2 ** 20);
      }
      expect(new Set(during.map((d) => d.records)).size).toBe(1);
      expect(new Set(during.map((d) => d.depth)).size).toBe(1);

      await waitFor("everything delivered", async () => (receiver.records.size === ROWS ? true : undefined), 120_000);
      // The receiver records a request before its answer reaches the daemon, which then empties the
      // outbox: the last batch's removal follows the last request by a moment.
      const text = await waitFor("the outbox emptied and the sources resumed", async () => {
        const body = (await get(http, "/metrics")).body;
        const empty = sample(body, 'grouparoo_outbox_depth{destination="crm"}') === 0 && sample(body, "grouparoo_sources_paused") === 0;
        return empty ? body : undefined;
      }, 20_000);
      expect(sample(text, "grouparoo_sources_paused")).toBe(0);
      expect(sample(text, 'grouparoo_exports_total{destination="crm",result="dead_letter"}')).toBe(0);
      expect((sample(text, 'grouparoo_exports_total{destination="crm",result="retry"}') ?? 0) > 0).toBe(true);
      expect(tooMany).toBe(3);
      expect(receiver.requests.filter((r) => r.status === 503).length).toBeGreaterThan(3);
      // The destination's options.batchSize (50) caps every request, below --delivery-batch-size (100).
      expect(Math.max(...receiver.requests.map((r) => r.exports))).toBe(50);
      expect([...receiver.records].sort(([a], [b]) => Number(a) - Number(b))).toEqual(
        Array.from({ length: ROWS }, (_, i) => [String(i + 1), { properties: { id: i + 1, email: `u${i + 1}@example.com` }, groups: [] }]),
      );
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      if (daemon && daemon.child.exitCode === null) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
      }
      await receiver.close();
      await db.drop();
    }
  });
});
