// A stop while the replication slot is being created, the daemon run as a process: Postgres creates a
// logical slot only once every transaction running on the server has ended, so behind someone's long
// transaction the daemon's first start waits. It says so after 5 s (a warning naming the cause), and
// SIGTERM meanwhile exits 0 at once, with no slot left behind (the wait is cancelled on the server);
// once that transaction ends, the next start creates the slot and reads its snapshot. On a Postgres of
// its own: the open transaction would hold up every other test's slot on a shared server.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { get, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { freePort } from "../services/process.js";
import { startPostgres, type PostgresService } from "../services/postgres.js";

describe("a stop while the replication slot waits for a running transaction", () => {
  let server: PostgresService;
  let admin: pg.Client;
  let blocker: pg.Client | undefined;
  let work: string;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
    await admin.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 50) g`);
    work = mkdtempSync(join(tmpdir(), "slot-wait-"));
  });
  afterAll(async () => {
    for (const d of daemons) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill("SIGKILL");
        await d.exited;
      }
    }
    await blocker?.end().catch(() => undefined);
    await admin?.end();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("warns after 5 s, exits 0 at once on SIGTERM leaving no slot, and the next start takes the snapshot", { timeout: 60_000 }, async () => {
    const config = join(work, "config.json");
    writeFileSync(
      config,
      JSON.stringify([
        { class: "app", id: "shop", type: "postgres", options: { connectionString: server.url, slot: "waits", publication: "waits" } },
        { class: "model", id: "users" },
        { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
        { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
        { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
      ]),
    );
    const state = join(work, "state");
    // Someone's transaction, open while the daemon starts.
    blocker = new pg.Client({ connectionString: server.url });
    blocker.on("error", () => undefined);
    await blocker.connect();
    await blocker.query("BEGIN");
    await blocker.query("SELECT txid_current()");

    const first = startDaemon(["--config", config, "--state", state], `127.0.0.1:${await freePort()}`);
    daemons.push(first);
    await first.until("the warning that the slot waits", async () => (first.logs().includes("creating the replication slot waits for transactions running on the server to end") ? true : undefined), 30_000);
    const waiting = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'CREATE_REPLICATION_SLOT%'`);
    expect(Number(waiting.rows[0]?.n)).toBe(1);
    expect((await get(first.http, "/readyz")).status).toBe(503);

    const signalled = Date.now();
    first.child.kill("SIGTERM");
    const exit = await first.exited;
    const seconds = (Date.now() - signalled) / 1000;
    expect({ code: exit.code, fast: seconds < 5 }, `exited after ${seconds} s; logs:\n${first.logs().slice(-2000)}`).toEqual({ code: 0, fast: true });
    // Cancelled on the server: no slot, and no backend still waiting to make one.
    await expect.poll(async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'CREATE_REPLICATION_SLOT%' AND state = 'active'`)).rows[0]?.n, { timeout: 5000 }).toBe(0);
    expect((await admin.query(`SELECT slot_name FROM pg_replication_slots`)).rows).toEqual([]);

    await blocker.query("ROLLBACK");
    await blocker.end();
    blocker = undefined;
    const second = startDaemon(["--config", config, "--state", state], `127.0.0.1:${await freePort()}`);
    daemons.push(second);
    await second.until("the snapshot read", async () => (second.logs().includes('"initial snapshot read"') ? true : undefined), 30_000);
    await second.until("ready", async () => ((await get(second.http, "/readyz")).status === 200 ? true : undefined), 30_000);
    expect((await admin.query(`SELECT slot_name FROM pg_replication_slots`)).rows).toEqual([{ slot_name: "waits" }]);
    const read = JSON.parse(second.logs().split("\n").find((l) => l.includes('"initial snapshot read"')) ?? "{}") as { rows?: number };
    expect(read.rows).toBe(50);
    second.child.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
  });
});
