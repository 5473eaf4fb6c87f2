// The daemon as a process against real Postgres: it snapshots the tables, streams further changes
// into records and groups, serves /metrics, /healthz and /readyz, drains on SIGTERM and exits 0,
// and resumes after a restart without losing or doubling anything.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { startDaemon as startProcess, get, sample, waitFor, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const config = (url: string) => `
- { class: app, id: shop, type: postgres, options: { connectionString: "${url}", slot: e2e_slot, publication: e2e_pub } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: source, id: purchases_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: purchases }, mapping: { user_id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, unique: true, sourceId: users_table, options: { column: email } }
- { class: property, id: ltv, type: float, sourceId: purchases_table, options: { column: amount, aggregationMethod: sum } }
- { class: group, id: high_value, modelId: users, rules: [{ propertyId: ltv, op: gte, match: 100 }] }
- { class: group, id: example_emails, modelId: users, rules: [{ propertyId: email, op: like, match: "%@example.com" }] }
`;

describe("grouparoo-stream run", () => {
  let db: TestDatabase;
  let work: string;
  let http: string;
  let daemon: DaemonProcess | undefined;
  /** Every daemon a test started: a failed test's is still stopped, and never answers for the next one. */
  const started: DaemonProcess[] = [];
  const startDaemon = (...args: Parameters<typeof startProcess>) => {
    const d = startProcess(...args);
    started.push(d);
    return d;
  };

  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "e2e_run");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
    await db.query(`CREATE TABLE purchases (id int PRIMARY KEY, user_id int, amount numeric)`);
    await db.query(`INSERT INTO users VALUES (1, 'ada@example.com'), (2, 'bob@other.org')`);
    await db.query(`INSERT INTO purchases VALUES (10, 1, 60), (11, 1, 50)`);
    work = mkdtempSync(join(tmpdir(), "e2e-run-"));
    writeFileSync(join(work, "config.yml"), config(db.url));
    http = `127.0.0.1:${await freePort()}`;
  });
  afterEach(async () => {
    for (const d of started.splice(0)) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill("SIGKILL");
        await d.exited;
      }
    }
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const metrics = async () => (await get(http, "/metrics")).body;
  const waitForSample = (series: string, value: number) =>
    waitFor(`${series} = ${value}`, async () => (sample(await metrics(), series) === value ? true : undefined));

  it("snapshots, streams, serves metrics and health, and drains on SIGTERM", async () => {
    daemon = startDaemon(["--config", join(work, "config.yml"), "--state", join(work, "state")], http);
    await daemon.until("/readyz 200", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined));
    expect(await get(http, "/healthz")).toEqual({ status: 200, body: "ok\n" });
    await waitForSample('grouparoo_records{model="users"}', 2);
    await waitForSample('grouparoo_group_members{group="high_value"}', 1);
    await waitForSample('grouparoo_group_members{group="example_emails"}', 1);

    await db.query(`INSERT INTO users VALUES (3, 'cy@example.com')`);
    await db.query(`INSERT INTO purchases VALUES (12, 3, 250)`);
    await db.query(`UPDATE purchases SET amount = 10 WHERE id = 10`);
    await waitForSample('grouparoo_records{model="users"}', 3);
    await waitForSample('grouparoo_group_members{group="high_value"}', 1);
    await waitForSample('grouparoo_group_members{group="example_emails"}', 2);
    // The update changes no count above (user 1 leaves high_value as user 3 enters it): wait for it too.
    await waitForSample('grouparoo_changes_applied_total{source="purchases_table",op="update"}', 1);
    // The lag gauges are set by their own polls (the slot's lag at the stream's start, then every 5 s).
    const text = await waitFor("the lag gauges set", async () => {
      const body = await metrics();
      return sample(body, 'grouparoo_replication_lag_seconds{stream="postgres:shop"}') !== undefined && sample(body, 'grouparoo_replication_lag_bytes{app="shop"}') !== undefined ? body : undefined;
    });
    expect(sample(text, 'grouparoo_changes_applied_total{source="users_table",op="snapshot"}')).toBe(2);
    expect(sample(text, 'grouparoo_changes_applied_total{source="purchases_table",op="update"}')).toBe(1);
    expect(text).toContain("# TYPE grouparoo_batch_apply_seconds histogram");
    expect(sample(text, 'grouparoo_snapshot_rows_read{source="users_table",table="public.users"}')).toBe(2);
    expect(sample(text, 'grouparoo_snapshot_rows_read{source="purchases_table",table="public.purchases"}')).toBe(2);
    expect(sample(text, 'grouparoo_replication_lag_seconds{stream="postgres:shop"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'grouparoo_replication_lag_bytes{app="shop"}')).toBeGreaterThanOrEqual(0);

    // The slot is acknowledged up to what is durable, so it is past the snapshot's consistent point.
    await waitFor("slot acknowledged", async () => {
      const { rows } = await db.query<{ confirmed: string; current: string }>(
        `SELECT confirmed_flush_lsn::text AS confirmed, pg_current_wal_lsn()::text AS current FROM pg_replication_slots WHERE slot_name = 'e2e_slot'`,
      );
      return rows[0] && rows[0].confirmed !== "0/0" ? rows[0] : undefined;
    });

    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    const lines = daemon.logs().trim().split("\n").map((l) => JSON.parse(l) as { msg: string; level: number });
    expect(lines.map((l) => l.msg)).toContain("draining: not ready, stopping sources, committing the batch in flight");
    expect(lines.at(-1)?.msg).toBe("stopped");
    expect(daemon.logs()).not.toContain(db.url);
  });

  it("resumes from the slot after a restart without doubling", async () => {
    await db.query(`INSERT INTO purchases VALUES (13, 2, 100)`); // while the daemon is down
    daemon = startDaemon(["--config", join(work, "config.yml"), "--state", join(work, "state")], http);
    await waitForSample('grouparoo_group_members{group="high_value"}', 2);
    await db.query(`DELETE FROM users WHERE id = 3`);
    await waitForSample('grouparoo_records{model="users"}', 2);
    await waitForSample('grouparoo_group_members{group="high_value"}', 1);
    const text = await metrics();
    expect(sample(text, 'grouparoo_changes_applied_total{source="users_table",op="snapshot"}')).toBeUndefined();
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });

  it("backfills a changed group over the records it holds, with no source change", async () => {
    writeFileSync(join(work, "config.yml"), config(db.url).replace("op: gte, match: 100", "op: gte, match: 50"));
    daemon = startDaemon(["--config", join(work, "config.yml"), "--state", join(work, "state")], http);
    // ltv: user 1 = 10 + 50 = 60, user 2 = 100; both now match.
    await waitForSample('grouparoo_group_members{group="high_value"}', 2);
    await waitFor("backfill complete", async () => (daemon?.logs().split("\n").some((l) => l.includes('"kind":"backfill"') && l.includes('"msg":"run complete"')) ? true : undefined));
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });

  it("refuses an invalid config with exit 78 before opening anything", async () => {
    writeFileSync(join(work, "bad.yml"), "- { class: model, id: users, colour: red }\n");
    const bad = startDaemon(["--config", join(work, "bad.yml"), "--state", join(work, "bad-state")], `127.0.0.1:${await freePort()}`);
    expect(await bad.exited).toEqual({ code: 78, signal: null });
    expect(bad.logs()).toContain('colour: is not a known field');
  });
});
