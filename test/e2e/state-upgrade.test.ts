// A state written by the previous layout (3: ids as text in keys), met by this version as an SRE meets
// it after an upgrade of the package: read-only commands refuse it and say why, the daemon upgrades it
// as it starts (and logs it), reads on from where the old state was, and ends exactly where a fresh
// daemon on the same config and the same source data ends.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { STATE_FORMAT, Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { runCli } from "../helpers/cli.js";
import { concreteShop, dumpState, SHOP_DATA, SHOP_SCHEMA, shopConfig, shopWrites, type Obj } from "../helpers/converge.js";
import { startDaemon, waitFor, type DaemonProcess } from "../helpers/daemon.js";
import { asLayout3, dumpLmdb } from "../helpers/layout.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const concrete = (url: string, slot: string, table: string): Obj[] => concreteShop(shopConfig(), url, slot, table);

/** Until the slot has confirmed everything written so far (acknowledged only once durably applied). */
async function caughtUp(db: TestDatabase, slot: string, daemon?: DaemonProcess): Promise<void> {
  const lsn = String((await db.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]?.lsn);
  const probe = async () => ((await db.query("SELECT confirmed_flush_lsn >= $1::pg_lsn AS done FROM pg_replication_slots WHERE slot_name = $2", [lsn, slot])).rows[0]?.done === true ? true : undefined);
  await (daemon ? daemon.until(`slot ${slot} at ${lsn}`, probe, 60_000) : waitFor(`slot ${slot} at ${lsn}`, probe, 60_000));
}

describe("a state of the previous layout", () => {
  const work = mkdtempSync(join(tmpdir(), "state-upgrade-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("is refused by read-only commands, left as it was by a start that is refused, upgraded by the daemon as it starts, and ends as a fresh daemon's", { timeout: 180_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "upgrade");
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "config.json");
      const state = join(work, "state");
      writeFileSync(config, JSON.stringify(concrete(db.url, "upgrade", "crm")));
      const args = ["--config", config, "--state", state, "--max-batch-delay-ms", "2"];
      daemon = startDaemon(args, `127.0.0.1:${await freePort()}`);
      await caughtUp(db, "upgrade", daemon);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      // The state as the previous version left it; the source changes while no daemon runs.
      expect(await asLayout3(state)).toBeGreaterThan(50);
      for (const round of [1, 2]) for (const sql of shopWrites(round)) await db.query(sql);

      const status = await runCli(["status", "--state", state]);
      expect(status.code).toBe(65);
      expect(status.stdout + status.stderr).toContain(`the state in ${state} has layout 3, which this version upgrades to layout ${STATE_FORMAT} when the daemon (run) or a worker starts on it; start it first, once a daemon of the older version is stopped (nothing was changed)`);

      // Starts that are refused leave the state in the layout the previous version reads.
      const before = await dumpLmdb(state);
      const wrong = join(work, "wrong.json");
      writeFileSync(wrong, JSON.stringify(concrete(db.url, "upgrade", "crm").map((o) => (o.id === "users_table" ? { ...o, options: { table: "no_such_table" } } : o))));
      const refused = await runCli(["run", "--config", wrong, "--state", state, "--http", `127.0.0.1:${await freePort()}`]);
      expect(refused.code).toBe(78);
      const busy = createServer();
      await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
      const port = (busy.address() as AddressInfo).port;
      const inUse = await runCli(["run", ...args, "--http", `127.0.0.1:${port}`]);
      await new Promise((resolve) => busy.close(resolve));
      expect(inUse.code).toBe(70);
      expect(inUse.stdout).toContain(`cannot listen on 127.0.0.1:${port}: EADDRINUSE; not starting (the state was not upgraded)`);
      expect(await dumpLmdb(state)).toEqual(before);
      expect((await runCli(["status", "--state", state])).code).toBe(65);

      daemon = startDaemon(args, `127.0.0.1:${await freePort()}`);
      const running = daemon;
      const upgraded = await daemon.until("the upgrade logged", async () => {
        const lines = running.logs().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string; fromLayout?: number; layout?: number; keysRewritten?: number });
        return lines.find((l) => l.msg === "state upgraded to this version's layout");
      });
      expect(upgraded).toMatchObject({ fromLayout: 3, layout: STATE_FORMAT });
      expect(upgraded.keysRewritten).toBeGreaterThan(50);
      await caughtUp(db, "upgrade", daemon);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
      const after = await runCli(["status", "--state", state]);
      expect(after.code).toBe(0);

      // The oracle: a fresh daemon on the same config over the same data.
      const oracleConfig = join(work, "oracle.json");
      writeFileSync(oracleConfig, JSON.stringify(concrete(db.url, "oracle", "crm_oracle")));
      const oracle = await Daemon.start({ config: oracleConfig, state: join(work, "oracle-state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "silent" }));
      if (typeof oracle === "number") throw new Error(`the oracle did not start (${oracle})`);
      await caughtUp(db, "oracle");
      await waitFor("the oracle's exports delivered", async () => (oracle.state.outboxDepth("crm") === 0 ? true : undefined));
      const dumpArgs = [["users"], ["crm"], ["high_value", "vips"], ["purchases_table"]] as const;
      const oracleDump = dumpState(oracle.state, ...dumpArgs);
      await oracle.drain("SIGTERM");
      await oracle.finished;
      const store = Store.open(state, { readOnly: true });
      const dump = dumpState(store, ...dumpArgs);
      await store.close();
      expect(Object.keys(dump.records as Obj).length).toBeGreaterThan(10);
      expect(dump).toEqual(oracleDump);
      expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
    } finally {
      if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
      }
      await db.drop();
    }
  });
});
