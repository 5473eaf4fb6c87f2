// Postgres restarted under load: the postgres-cdc stream reconnects by itself and the final state
// is exactly the table's contents.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { startPostgres, type PostgresService } from "../services/postgres.js";
import { startCdc, validConfig } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";

describe("postgres-cdc across a server restart", () => {
  let server: PostgresService;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("resumes streaming after Postgres restarts mid-load, losing nothing", { timeout: 120_000 }, async () => {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE TABLE users (id int PRIMARY KEY, score int)`);
    await admin.end();
    const run = startCdc(
      validConfig([
        { class: "app", id: "pg", type: "postgres", options: { connectionString: server.url, snapshot: "no_data" } },
        { class: "model", id: "users" },
        { class: "source", id: "users_table", type: "postgres-cdc", appId: "pg", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
        { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
        { class: "property", id: "score", type: "integer", sourceId: "users_table", options: { column: "score" } },
      ]),
    );
    try {
      await waitFor("streaming", async () => (run.connector.ready() ? true : undefined));
      // The writer retries each statement until it lands, so the table's history is known.
      let restarted = false;
      const write = async (sql: string, params: unknown[]) => {
        for (;;) {
          const client = new pg.Client({ connectionString: server.url });
          client.on("error", () => undefined);
          try {
            await client.connect();
            await client.query(sql, params);
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          } finally {
            await client.end().catch(() => undefined);
          }
        }
      };
      const writer = (async () => {
        for (let i = 1; i <= 600; i += 1) {
          await write(`INSERT INTO users VALUES ($1, $1) ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score`, [i]);
          if (i % 5 === 0) await write(`UPDATE users SET score = score * 10 WHERE id = $1`, [i - 1]);
        }
      })();
      await waitFor("some rows applied", async () => (run.store.countOf("records", "users") > 100 ? true : undefined));
      await server.restart();
      restarted = true;
      await writer;
      expect(restarted).toBe(true);
      const check = new pg.Client({ connectionString: server.url });
      await check.connect();
      const { rows } = await check.query<{ id: number; score: number }>(`SELECT id, score FROM users ORDER BY id`);
      await check.end();
      await waitFor(
        "state equals the table",
        async () => {
          const state = [...run.store.recordsOf("users")].map((r) => ({ id: Number(r.id), score: r.values.score })).sort((a, b) => a.id - b.id);
          return JSON.stringify(state) === JSON.stringify(rows) ? true : undefined;
        },
        60_000,
      );
      expect(rows).toHaveLength(600);
    } finally {
      await run.stop();
    }
  });
});
