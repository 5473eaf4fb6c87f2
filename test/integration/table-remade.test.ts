// A captured table made again under its name while the daemon streams (a new table renamed into place,
// as online schema change tools swap tables, or dropped and created again): its filtered publication
// lists the old table, so nothing of the new one would stream, and the rows it was filled with never
// streamed. The connector sees the name's OID change, adds the new table to the publication and asks
// for a re-read, whose sweep removes the rows the old table had and the new one lacks: the state and
// the destination end as a fresh daemon's. Also when the swap happens while the daemon is stopped.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresCdcSource } from "../../connectors/postgres/cdc/source.js";
import { currentTables } from "../../connectors/postgres/cdc/tables.js";
import { resolvePostgresApp } from "../../connectors/postgres/settings.js";
import { Daemon } from "../../daemon/daemon.js";
import type { Store } from "../../state/store.js";
import { listRuns } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { concreteShop, dumpState, SHOP_DATA, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const SWAP = [
  `CREATE TABLE users_new (LIKE users INCLUDING ALL)`,
  `INSERT INTO users_new SELECT * FROM users WHERE id <> 3`,
  `UPDATE users_new SET name = 'swapped' WHERE id = 4`,
  `INSERT INTO users_new (id, email, name, last_name, vip) VALUES (30, 'u30@example.com', 'name30', 'last30', true)`,
  `BEGIN; ALTER TABLE users RENAME TO users_old; ALTER TABLE users_new RENAME TO users; COMMIT`,
  `DROP TABLE users_old`,
];

describe("a captured table made again under its name", () => {
  let db: TestDatabase;
  let work: string;
  const checkMs = PostgresCdcSource.tableCheckMs;
  beforeAll(() => void (PostgresCdcSource.tableCheckMs = 300));
  afterAll(() => void (PostgresCdcSource.tableCheckMs = checkMs));
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "table_remade");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "table-remade-"));
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const logs: { msg: string; level: number }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) });
  const start = async (file: string, objects: Obj[], state: string) => {
    writeFileSync(file, JSON.stringify(objects));
    const daemon = await Daemon.start({ config: file, state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, logger);
    if (typeof daemon === "number") throw new Error(`the daemon did not start (exit ${daemon})`);
    return daemon;
  };
  const stop = async (daemon: Daemon) => {
    await daemon.drain("SIGTERM");
    await daemon.finished;
  };
  const quiet = (daemon: Daemon) => daemon.runs?.pending().length === 0 && daemon.state.outboxDepth("crm") === 0;
  const shop = (oracle = false) => concreteShop(shopConfig(), db.url, oracle ? "remade_oracle" : "remade", oracle ? "crm_oracle" : "crm");
  const dump = (store: Store) => dumpState(store, ["users"], ["crm"], ["high_value", "vips"], ["users_table", "purchases_table"]);
  const expectAsFresh = async (daemon: Daemon) => {
    const oracle = await start(join(work, "oracle.json"), shop(true), join(work, "oracle"));
    try {
      await waitFor("the oracle", async () => (oracle.state.countOf("records", "users") === 13 && quiet(oracle) ? true : undefined), 60_000);
      expect({ ...dump(daemon.state), remote: null }).toEqual({ ...dump(oracle.state), remote: null });
      const table = async (name: string) => (await db.query(`SELECT * FROM ${name} ORDER BY id`)).rows;
      expect(await table("crm")).toEqual(await table("crm_oracle"));
    } finally {
      await stop(oracle);
    }
  };
  const remade = (daemon: Daemon) =>
    waitFor(
      "the new table read and streaming",
      async () => (daemon.state.getRecord("users", "31") && !daemon.state.getRecord("users", "3") && listRuns(daemon.state).some((r) => r.kind === "reread" && r.state === "complete") && quiet(daemon) ? true : undefined),
      60_000,
    );

  it("while the daemon streams: added to the publication and read again, the old table's rows gone", { timeout: 120_000 }, async () => {
    const daemon = await start(join(work, "config.json"), shop(), join(work, "state"));
    try {
      await waitFor("the snapshot", async () => (daemon.state.countOf("records", "users") === 12 && quiet(daemon) ? true : undefined), 60_000);
      // The OIDs seen are stored before the swap.
      await waitFor("the tables' OIDs", async () => (daemon.state.allPositions().has("postgres:shop:tables") ? true : undefined));
      for (const sql of SWAP) await db.query(sql);
      // A row written after the swap streams once the table is in the publication again (or is read).
      await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (31, 'u31@example.com', 'name31', 'last31', false)`);
      await remade(daemon);
      expect(daemon.state.getRecord("users", "4")?.values.name).toBe("swapped");
      expect(logs.find((l) => l.msg.startsWith("table public.users was made again"))?.level).toBe(40);
      await db.query(`UPDATE users SET name = 'after' WHERE id = 5`);
      await waitFor("a change streamed from the new table", async () => (daemon.state.getRecord("users", "5")?.values.name === "after" && quiet(daemon) ? true : undefined));
      await db.query(`UPDATE users SET name = 'name5' WHERE id = 5`);
      await waitFor("and back", async () => (daemon.state.getRecord("users", "5")?.values.name === "name5" && quiet(daemon) ? true : undefined));
      await expectAsFresh(daemon);
    } finally {
      await stop(daemon);
    }
  });

  it("while the daemon is stopped: found at the next start", { timeout: 120_000 }, async () => {
    const file = join(work, "config.json");
    const state = join(work, "state");
    const first = await start(file, shop(), state);
    await waitFor("the snapshot", async () => (first.state.countOf("records", "users") === 12 && quiet(first) && first.state.allPositions().has("postgres:shop:tables") ? true : undefined), 60_000);
    await stop(first);
    for (const sql of SWAP) await db.query(sql);
    await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (31, 'u31@example.com', 'name31', 'last31', false)`);
    const daemon = await start(file, shop(), state);
    try {
      await remade(daemon);
      await expectAsFresh(daemon);
    } finally {
      await stop(daemon);
    }
  });
  it("taken out of the publication for a while: added again and read again; one dropped for good is the app's problem", { timeout: 120_000 }, async () => {
    const daemon = await start(join(work, "config.json"), shop(), join(work, "state"));
    try {
      await waitFor("the snapshot", async () => (daemon.state.countOf("records", "users") === 12 && quiet(daemon) && daemon.state.allPositions().has("postgres:shop:tables") ? true : undefined), 60_000);
      await db.query(`ALTER PUBLICATION remade DROP TABLE users`);
      await db.query(`DELETE FROM users WHERE id = 3`);
      await db.query(`UPDATE users SET name = 'swapped' WHERE id = 4`);
      await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (30, 'u30@example.com', 'name30', 'last30', true), (31, 'u31@example.com', 'name31', 'last31', false)`);
      await remade(daemon);
      expect(daemon.state.getRecord("users", "4")?.values.name).toBe("swapped");
      expect(logs.find((l) => l.msg.startsWith("table public.users is not in publication remade"))?.level).toBe(40);
      await expectAsFresh(daemon);

      // Dropped for good: not ready, naming it; its records stay.
      await db.query(`DROP TABLE purchases`);
      const reason = await waitFor("the app's problem", async () => daemon.notReady() ?? undefined, 10_000);
      expect(reason).toContain("table public.purchases does not exist any more: the records and rows read from it (sources purchases_table) stay as they were");
      expect(daemon.state.rowOf("purchases_table", "1")).toBeDefined();
    } finally {
      await stop(daemon);
    }
  });
  it("finds a partitioned table in a publication that lists its partitions", { timeout: 30_000 }, async () => {
    await db.query(`CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`);
    await db.query(`CREATE PUBLICATION parted FOR TABLE events, users`);
    const settings = resolvePostgresApp({ id: "shop", type: "postgres", options: { connectionString: db.url, slot: "parted", publication: "parted" } } as never);
    const now = await currentTables(settings, [
      { sourceId: "events_table", table: "public.events" },
      { sourceId: "users_table", table: "public.users" },
      { sourceId: "purchases_table", table: "public.purchases" },
      { sourceId: "gone_table", table: "public.gone" },
    ]);
    expect([...now].map(([t, { oid, published }]) => [t, oid !== null, published])).toEqual([
      ["public.events", true, true],
      ["public.users", true, true],
      ["public.purchases", true, false],
      ["public.gone", false, false],
    ]);
  });
});
