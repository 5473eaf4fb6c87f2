// Postgres restarted under load: the postgres-cdc stream reconnects by itself and the final state
// is exactly the table's contents. A stop that comes while the replication connection opens ends it
// and releases the slot.
import { LogicalReplicationService } from "pg-logical-replication";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { postgresCdcSource } from "../../connectors/postgres/cdc/index.js";
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

  it("ends a replication connection that a stop found still opening, and releases the slot", { timeout: 60_000 }, async () => {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE TABLE stops (id int PRIMARY KEY)`);
    const config = validConfig([
      { class: "app", id: "pg", type: "postgres", options: { connectionString: server.url, snapshot: "no_data", slot: "stop_slot", publication: "stop_pub" } },
      { class: "model", id: "stops" },
      { class: "source", id: "stops_table", type: "postgres-cdc", appId: "pg", modelId: "stops", options: { table: "stops" }, mapping: { id: "stop_id" } },
      { class: "property", id: "stop_id", type: "integer", unique: true, sourceId: "stops_table", options: { column: "id" } },
    ]);
    // pg-logical-replication creates its client only after an await: a stop before that finds none to
    // end. The window is held open here, 300 ms, so that the stop comes inside it.
    const prototype = LogicalReplicationService.prototype as unknown as { client: (...args: unknown[]) => Promise<unknown> };
    const original = prototype.client;
    let entered: () => void = () => undefined;
    const opening = new Promise<void>((resolve) => (entered = resolve));
    prototype.client = async function (this: unknown, ...args: unknown[]) {
      entered();
      await new Promise((resolve) => setTimeout(resolve, 300));
      return original.apply(this, args);
    };
    const app = config.apps[0];
    if (!app) throw new Error("no app");
    const connector = postgresCdcSource.create(app, config.sources, { logger: pino({ level: "silent" }), positions: new Map() });
    const subscription = connector.changes().subscribe({ error: () => undefined });
    try {
      await opening;
      const stopped = await Promise.race([connector.stop().then(() => "stopped"), new Promise((resolve) => setTimeout(() => resolve("still running after 10 s"), 10_000))]);
      expect(stopped).toBe("stopped");
      await waitFor("the slot released", async () => {
        const { rows } = await admin.query<{ active: boolean }>(`SELECT active FROM pg_replication_slots WHERE slot_name = 'stop_slot'`);
        return rows[0]?.active === false ? true : undefined;
      });
    } finally {
      prototype.client = original;
      subscription.unsubscribe();
      await admin.end();
    }
  });
});
