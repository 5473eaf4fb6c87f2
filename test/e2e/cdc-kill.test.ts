// The daemon reading a Postgres slot, killed with SIGKILL at random instants during a write load
// (10 times) and restarted: the slot's confirmed_flush_lsn never passes the state's durable
// position, and the final state is exactly the table.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { get, startDaemon, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const KILLS = 10;

describe("postgres-cdc under SIGKILL", () => {
  const work = mkdtempSync(join(tmpdir(), "cdc-kill-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(`never confirms past durable state and ends exact after ${KILLS} kills`, { timeout: 240_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "cdc_kill");
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, score int)`);
      writeFileSync(
        join(work, "config.yml"),
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: kill_slot } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: score, type: integer, sourceId: users_table, options: { column: score } }
`,
      );
      let writing = true;
      let step = 0;
      const writer = (async () => {
        while (writing) {
          step += 1;
          const id = 1 + ((step * 13) % 400);
          if (step % 6 === 0) await db.query(`DELETE FROM users WHERE id = $1`, [id]);
          else await db.query(`INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score`, [id, step]);
        }
      })();
      const state = join(work, "state");
      const args = ["--config", join(work, "config.yml"), "--state", state];
      const checks: { confirmed: string; durable: string }[] = [];
      let random = 5;
      for (let kill = 0; kill < KILLS; kill += 1) {
        const http = `127.0.0.1:${await freePort()}`;
        const daemon = startDaemon(args, http);
        await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
        random = (random * 1103515245 + 12345) % 2147483648;
        await new Promise((r) => setTimeout(r, 100 + (random % 700)));
        daemon.child.kill("SIGKILL");
        expect((await daemon.exited).signal).toBe("SIGKILL");
        const { rows } = await db.query<{ confirmed: string }>(`SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = 'kill_slot'`);
        const store = Store.open(state);
        const durable = store.position("postgres:shop") ?? "0/0";
        await store.close();
        checks.push({ confirmed: rows[0]?.confirmed ?? "", durable });
      }
      // confirmed_flush_lsn must never pass the durable position.
      for (const { confirmed, durable } of checks) {
        const { rows } = await db.query<{ ok: boolean }>(`SELECT $1::pg_lsn <= $2::pg_lsn AS ok`, [confirmed, durable]);
        expect({ confirmed, durable, ok: rows[0]?.ok }).toEqual({ confirmed, durable, ok: true });
      }
      writing = false;
      await writer;
      const http = `127.0.0.1:${await freePort()}`;
      const daemon = startDaemon(args, http);
      const { rows: expected } = await db.query<{ id: number; score: number }>(`SELECT id, score FROM users ORDER BY id`);
      await waitFor("the state converges", async () => {
        const store = Store.open(state);
        try {
          const actual = [...store.recordsOf("users")].map((r) => ({ id: Number(r.id), score: r.values.score })).sort((a, b) => a.id - b.id);
          return JSON.stringify(actual) === JSON.stringify(expected) ? true : undefined;
        } finally {
          await store.close();
        }
      }, 60_000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
      expect(step).toBeGreaterThan(200);
    } finally {
      await db.drop();
    }
  });
});
