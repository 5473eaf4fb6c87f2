// The daemon killed with SIGKILL during delivery (10 times) while rows change in Postgres: after a
// last restart, the destination table holds exactly the source table's rows.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, sample, startDaemon, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const KILLS = 10;

describe("delivery under SIGKILL", () => {
  const work = mkdtempSync(join(tmpdir(), "delivery-kill-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(`converges to the exact remote state after ${KILLS} kills during delivery`, { timeout: 240_000 }, async () => {
    const source = await createTestDatabase(testPgUrl(), "kill_src");
    const target = await createTestDatabase(testPgUrl(), "kill_dst");
    try {
      await source.query(`CREATE TABLE users (id int PRIMARY KEY, email text, score int)`);
      await target.query(`CREATE TABLE contacts (id int PRIMARY KEY, email text, score int)`);
      writeFileSync(
        join(work, "config.yml"),
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${source.url}" } }
- { class: app, id: crm, type: postgres, options: { connectionString: "${target.url}" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, sourceId: users_table, options: { column: email } }
- { class: property, id: score, type: integer, sourceId: users_table, options: { column: score } }
- { class: destination, id: contacts, type: postgres-table, appId: crm, modelId: users, collection: model, syncMode: sync, options: { table: contacts, primaryKey: id }, mapping: { id: user_id, email: email, score: score } }
`,
      );
      let writing = true;
      let step = 0;
      const writer = (async () => {
        while (writing) {
          step += 1;
          const id = 1 + ((step * 37) % 300);
          if (step % 7 === 0) await source.query(`DELETE FROM users WHERE id = $1`, [id]);
          else await source.query(`INSERT INTO users VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, score = EXCLUDED.score`, [id, `u${id}.${step}@example.com`, step]);
        }
      })();
      const args = ["--config", join(work, "config.yml"), "--state", join(work, "state"), "--delivery-batch-size", "20", "--max-backoff-ms", "500"];
      let random = 11;
      for (let kill = 0; kill < KILLS; kill += 1) {
        const http = `127.0.0.1:${await freePort()}`;
        const daemon = startDaemon(args, http);
        await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
        // Kill only once deliveries are under way.
        await waitFor("delivering", async () => ((sample((await get(http, "/metrics")).body, 'grouparoo_exports_total{destination="contacts",result="ok"}') ?? 0) > 0 ? true : undefined), 30_000);
        random = (random * 1103515245 + 12345) % 2147483648;
        await new Promise((r) => setTimeout(r, random % 400));
        daemon.child.kill("SIGKILL");
        expect((await daemon.exited).signal).toBe("SIGKILL");
      }
      writing = false;
      await writer;

      const http = `127.0.0.1:${await freePort()}`;
      const daemon = startDaemon(args, http);
      const { rows: expected } = await source.query<{ id: number; email: string; score: number }>(`SELECT id, email, score FROM users ORDER BY id`);
      await waitFor(
        "the destination converges",
        async () => {
          const depth = sample((await get(http, "/metrics")).body, 'grouparoo_outbox_depth{destination="contacts"}');
          const { rows } = await target.query<{ id: number; email: string; score: number }>(`SELECT id, email, score FROM contacts ORDER BY id`);
          return depth === 0 && JSON.stringify(rows) === JSON.stringify(expected) ? true : undefined;
        },
        60_000,
      );
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
      const { rows } = await target.query(`SELECT id, email, score FROM contacts ORDER BY id`);
      expect(rows).toEqual(expected);
      expect(step).toBeGreaterThan(300);
    } finally {
      await source.drop();
      await target.drop();
    }
  });
});
