// A postgres-table destination whose table someone holds locked, the daemon run as a process:
// - SIGTERM while a batch waits behind the lock exits 0 within the drain timeout (it waited for the
//   lock before); the batch's transaction never commits, and the next start sends its export again;
// - a reload while the outbox holds the sources paused, to a config without that destination, leaves
//   `grouparoo_sources_paused` at 0 and the sources reading (the gauge stayed at 1 before), and while
//   it waits on the batch behind the lock, /metrics keeps the state's gauges.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { get, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

describe("a destination table held locked", () => {
  let db: TestDatabase;
  let work: string;
  const daemons: DaemonProcess[] = [];
  const lockers: pg.Client[] = [];

  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "dest_lock");
    work = mkdtempSync(join(tmpdir(), "dest-lock-"));
  });
  afterAll(async () => {
    for (const d of daemons) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill("SIGKILL");
        await d.exited;
      }
    }
    for (const l of lockers) await l.end().catch(() => undefined);
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const objects = (name: string, withCrm: boolean) => [
    { class: "app", id: "shop", type: "postgres", options: { connectionString: db.url, slot: `${name}_slot`, publication: `${name}_pub` } },
    { class: "model", id: "users" },
    { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: `${name}_users` }, mapping: { id: "user_id" } },
    { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
    { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
    ...(withCrm ? [{ class: "destination", id: "crm", type: "postgres-table", appId: "shop", modelId: "users", collection: "model", syncMode: "sync", options: { table: `${name}_crm`, primaryKey: "id" }, mapping: { id: "user_id", email: "email" } }] : []),
  ];
  async function tables(name: string, users: number): Promise<void> {
    await db.query(`CREATE TABLE ${name}_users (id int PRIMARY KEY, email text)`);
    await db.query(`CREATE TABLE ${name}_crm (id int PRIMARY KEY, email text)`);
    await db.query(`INSERT INTO ${name}_users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, ${users}) g`);
  }
  async function lock(table: string): Promise<pg.Client> {
    const locker = new pg.Client({ connectionString: db.url });
    locker.on("error", () => undefined);
    await locker.connect();
    lockers.push(locker);
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    return locker;
  }
  const count = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0]?.n);
  const waitingOnLock = (table: string) => count(`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%${table}%' AND datname = current_database()`);

  it("exits within the drain timeout on SIGTERM while a batch waits behind the lock, and sends it again after a restart", { timeout: 90_000 }, async () => {
    await tables("t1", 10);
    const config = join(work, "t1.json");
    writeFileSync(config, JSON.stringify(objects("t1", true)));
    const state = join(work, "t1-state");
    const args = ["--config", config, "--state", state, "--drain-timeout-ms", "1000"];
    const first = startDaemon(args, `127.0.0.1:${await freePort()}`);
    daemons.push(first);
    await first.until("the snapshot delivered", async () => ((await count(`SELECT count(*) AS n FROM t1_crm`)) === 10 ? true : undefined), 30_000);

    const locker = await lock("t1_crm");
    await db.query(`INSERT INTO t1_users VALUES (11, 'late@example.com')`);
    await first.until("a batch waiting on the lock", async () => ((await waitingOnLock("t1_crm")) === 1 ? true : undefined), 30_000);
    const signalled = Date.now();
    first.child.kill("SIGTERM");
    const exit = await first.exited;
    const seconds = (Date.now() - signalled) / 1000;
    expect({ code: exit.code, withinDrain: seconds < 6 }, `exited after ${seconds} s:\n${first.logs().slice(-2000)}`).toEqual({ code: 0, withinDrain: true });
    // The operator learns that the drain did not flush everything.
    expect(first.logs()).toMatch(/"level":40,.*"drainTimeoutMs":1000,"depths":\{"crm":1\},"msg":"exports left in the outbox at exit: they are sent after the next start"/);

    // Its transaction never commits: with the lock released, the row is not there until it is sent again.
    await locker.query("ROLLBACK");
    await expect.poll(() => waitingOnLock("t1_crm"), { timeout: 10_000 }).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM t1_crm WHERE id = 11`)).toBe(0);
    const second = startDaemon(args, `127.0.0.1:${await freePort()}`);
    daemons.push(second);
    await second.until("the export sent again", async () => ((await count(`SELECT count(*) AS n FROM t1_crm WHERE id = 11 AND email = 'late@example.com'`)) === 1 ? true : undefined), 30_000);
    second.child.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
    expect(second.logs()).not.toContain("exports left in the outbox at exit");
  });

  it("leaves grouparoo_sources_paused at 0 after a reload away from the full outbox that paused them", { timeout: 90_000 }, async () => {
    await tables("t2", 0);
    const config = join(work, "t2.json");
    writeFileSync(config, JSON.stringify(objects("t2", true)));
    const daemon = startDaemon(["--config", config, "--state", join(work, "t2-state"), "--outbox-bound", "5", "--max-batch-size", "1"], `127.0.0.1:${await freePort()}`);
    daemons.push(daemon);
    await daemon.until("ready", async () => ((await get(daemon.http, "/readyz").catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 30_000);
    await lock("t2_crm");
    for (let i = 1; i <= 20; i++) await db.query(`INSERT INTO t2_users VALUES (${i}, 'u${i}@example.com')`);
    const metric = async (series: string) => sample((await get(daemon.http, "/metrics")).body, series);
    await daemon.until("the sources paused by the outbox", async () => ((await metric("grouparoo_sources_paused")) === 1 ? true : undefined), 30_000);
    expect(daemon.logs()).toMatch(/"depths":\{"crm":\d+\},"msg":"outbox full: pausing sources"/);

    const paused = await metric('grouparoo_records{model="users"}');
    writeFileSync(config, JSON.stringify(objects("t2", false)));
    daemon.child.kill("SIGHUP");
    // While the reload waits for the batch behind the lock, a scrape still has the state's gauges of
    // the config it replaces (they were gone from /metrics until the next config ran).
    await daemon.until("the reload under way", async () => (daemon.logs().includes('"msg":"reloading the config"') ? true : undefined), 10_000);
    const during = (await get(daemon.http, "/metrics")).body;
    expect(daemon.logs()).not.toContain('"msg":"config reloaded"');
    // (The changes read before the sources paused are still being applied: at least as many records.)
    expect(sample(during, 'grouparoo_records{model="users"}')).toBeGreaterThanOrEqual(paused ?? Infinity);
    expect(sample(during, 'grouparoo_records{model="users"}')).toBeLessThanOrEqual(20);
    expect(sample(during, 'grouparoo_outbox_depth{destination="crm"}')).toBeGreaterThanOrEqual(5);
    await daemon.until("the reload applied", async () => (daemon.logs().includes('"msg":"config reloaded"') ? true : undefined), 30_000);
    expect(sample((await get(daemon.http, "/metrics")).body, 'grouparoo_outbox_depth{destination="crm"}')).toBeUndefined();
    await daemon.until("the gauge back at 0", async () => ((await metric("grouparoo_sources_paused")) === 0 ? true : undefined), 10_000);
    // And the sources read: every user is a record.
    await daemon.until("every user a record", async () => ((await metric('grouparoo_records{model="users"}')) === 20 ? true : undefined), 30_000);
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });
});
