// A publication made after changes the slot still holds (publication-renamed.test.ts: the connector
// reads every source again and moves the slot past the publication's creation), in two harder cases:
//
// - on a server whose commits are asynchronous (synchronous_commit off, as in the test clusters), the
//   publication's commit record may be inserted into the WAL but not written yet when the slot is
//   moved. pg_current_wal_lsn() is the WAL's write position, so a slot moved there stayed before the
//   publication's creation: a change committed in between failed with 42704 once more, and every
//   source was read a second time (seen under load with two test workers);
// - the publication dropped and made again while a re-read is under way: the slot is moved past the
//   watermarks of the chunk the re-read waits on, which then never stream; the Run waited for ever,
//   and every Run behind it too.
//
// A cluster of its own: both cases make its WAL writer sleep 10 s (ALTER SYSTEM), so that what is
// committed asynchronously stays unwritten, and unstreamed, for a while, as on a loaded server.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { listRuns } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { startPostgres, type PostgresService } from "../services/postgres.js";
import { waitFor } from "../helpers/daemon.js";
import { concreteShop, SHOP_DATA, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";

describe("a publication made later, the slot moved past it", () => {
  let server: PostgresService;
  let db: TestDatabase;
  let work: string;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    db = await createTestDatabase(server.url, "pub_later");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "pub-later-"));
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  let logs: { msg: string; level: number; skippedTo?: string }[] = [];
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
  const shop = (publication: string) => concreteShop(shopConfig(), db.url, "later", "crm").map((o) => (o.class === "app" ? { ...o, options: { ...(o.options as Obj), publication } } : o));
  const moves = () => logs.filter((l) => l.skippedTo !== undefined);
  const rereads = (daemon: Daemon) => listRuns(daemon.state).filter((r) => r.kind === "reread");

  const walWriterDelay = async (value: string | null) => {
    await db.query(value === null ? `ALTER SYSTEM RESET wal_writer_delay` : `ALTER SYSTEM SET wal_writer_delay = '${value}'`);
    await db.query(`SELECT pg_reload_conf()`);
  };
  /**
   * WAL of another database (which the slot does not decode) up to just past a WAL page's end: the WAL
   * writer, woken early only by a full page, then leaves what is committed asynchronously unwritten.
   */
  const freshWalPage = async () => {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      const offset = async () => {
        const { rows } = await admin.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
        return Number(BigInt(`0x${(rows[0]?.lsn ?? "0/0").split("/")[1]}`) % 8192n);
      };
      const pad = (bytes: number) => admin.query(`SELECT pg_logical_emit_message(false, 'pad', repeat('x', $1))`, [bytes]);
      if ((await offset()) > 7500) await pad(1000);
      await pad(8192 - (await offset()) - 300);
      await pad(400);
      const at = await offset();
      if (at > 1000) throw new Error(`the WAL insert position is ${at} bytes into its page, not at its start`);
    } finally {
      await admin.end();
    }
  };

  it("its creation not yet written to the WAL: the slot moves past it, and each source is read once", { timeout: 120_000 }, async () => {
    logs = [];
    const file = join(work, "config.json");
    const state = join(work, "state");
    let daemon = await start(file, shop("pub_a"), state);
    try {
      await waitFor("the snapshot", async () => (daemon.state.countOf("records", "users") === 12 && quiet(daemon) ? true : undefined), 60_000);
      await stop(daemon);
      try {
        // The WAL writer wakes at the reload, then sleeps 10 s: asynchronous commits stay unwritten.
        await walWriterDelay("10s");
        await new Promise((r) => setTimeout(r, 500));
        // Written (flushed) at once: the old stream's first change, which pub_b cannot decode (42704).
        await db.query(`BEGIN; SET LOCAL synchronous_commit = on; DELETE FROM users WHERE id = 3; COMMIT`);
        await freshWalPage();
        // Committed before pub_b too, but left in the WAL buffers, as pub_b's own creation is.
        await db.query(`UPDATE users SET name = 'changed' WHERE id = 4`);
        daemon = await start(file, shop("pub_b"), state);
        await waitFor("the slot moved", async () => (moves().length > 0 ? true : undefined), 8_000);
      } finally {
        // The WAL writer writes again: whatever the slot was moved before streams now.
        await walWriterDelay(null);
      }
      await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (31, 'u31@example.com', 'name31', 'last31', false)`);
      await waitFor("streaming from pub_b", async () => (daemon.state.getRecord("users", "31") && quiet(daemon) && daemon.notReady() === null ? true : undefined), 60_000);
      expect(daemon.state.getRecord("users", "3")).toBeUndefined();
      expect(daemon.state.getRecord("users", "4")?.values.name).toBe("changed");
      // Moved once, each source read once: the stream never failed on a change before pub_b again.
      expect(moves()).toHaveLength(1);
      expect(rereads(daemon).map((r) => `${r.target} ${r.state}`).sort()).toEqual(["source purchases_table complete", "source users_table complete"]);
    } finally {
      await stop(daemon);
    }
  });

  it("dropped and made again while a re-read's chunk is under way: the chunk is read again, and every Run completes", { timeout: 120_000 }, async () => {
    logs = [];
    const file = join(work, "config.json");
    const state = join(work, "state");
    let daemon = await start(file, shop("pub_a"), state);
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    try {
      await waitFor("the snapshot", async () => (daemon.state.countOf("records", "users") === 12 && quiet(daemon) ? true : undefined), 60_000);
      await stop(daemon);
      await db.query(`DELETE FROM users WHERE id = 3`);
      // pub_b made by hand; the purchases' re-read will find its table locked.
      await db.query(`CREATE PUBLICATION pub_b FOR TABLE users, purchases`);
      await lock.query(`BEGIN; LOCK TABLE purchases IN ACCESS EXCLUSIVE MODE`);
      daemon = await start(file, shop("pub_b"), state);
      // The purchases' Run writes its chunk's low watermark, then waits to read the table.
      const blocked = async () => (await db.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%__grouparoo_key%'`)).rowCount === 1;
      await waitFor("the chunk waiting", async () => ((await blocked()) ? true : undefined), 30_000);
      expect(moves()).toHaveLength(1);
      try {
        // What is committed from now on stays unwritten, so unstreamed, until a commit flushes it below.
        await walWriterDelay("10s");
        await new Promise((r) => setTimeout(r, 500));
        // pub_b dropped and made again around a change, which pgoutput cannot decode (42704).
        await db.query(`BEGIN; DROP PUBLICATION pub_b; UPDATE users SET name = 'between' WHERE id = 5; CREATE PUBLICATION pub_b FOR ALL TABLES; COMMIT`);
        // The chunk reads, and writes its high watermark after that change.
        await lock.query(`ROLLBACK`);
        await waitFor("the chunk read", async () => (!(await blocked()) ? true : undefined), 30_000);
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        await walWriterDelay(null);
      }
      // Flushed: the stream fails at the change, and the slot is moved past the chunk's high watermark.
      await db.query(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO users (id, email, name, last_name, vip) VALUES (31, 'u31@example.com', 'name31', 'last31', false); COMMIT`);
      await waitFor("the slot moved again", async () => (moves().length > 1 ? true : undefined), 30_000);
      await waitFor("every Run complete", async () => (quiet(daemon) && daemon.notReady() === null ? true : undefined), 60_000);
      expect(moves()).toHaveLength(2);
      expect(daemon.state.getRecord("users", "3")).toBeUndefined();
      expect(daemon.state.getRecord("users", "5")?.values.name).toBe("between");
      expect(daemon.state.getRecord("users", "31")?.values.name).toBe("name31");
      expect(rereads(daemon).map((r) => `${r.target} ${r.state}`).sort()).toEqual([
        "source purchases_table complete",
        "source purchases_table complete",
        "source users_table complete",
        "source users_table complete",
      ]);
      expect([...daemon.state.rowsOf("purchases_table")]).toHaveLength(40);
    } finally {
      await lock.end();
      await stop(daemon);
    }
  });
});
