// A postgres app's publication renamed in the config (the slot kept): the daemon creates the new
// publication at its start, but the slot still holds changes committed before it existed, and pgoutput
// decodes each change with the catalog as of that change: `publication "NEW" does not exist` (42704)
// at every attempt, for ever. The connector then reads its sources again (a Run, whose sweep removes
// what was deleted meanwhile) and moves the slot past the publication's creation, so the state and the
// destination end as a fresh daemon's on the new config.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import type { Store } from "../../state/store.js";
import { listRuns } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { concreteShop, dumpState, SHOP_DATA, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("a postgres app's publication renamed in the config", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "pub_renamed");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "pub-renamed-"));
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
  const shop = (slot: string, publication: string, table = "crm") =>
    concreteShop(shopConfig(), db.url, slot, table).map((o) => (o.class === "app" ? { ...o, options: { ...(o.options as Obj), publication } } : o));
  const dump = (store: Store) => dumpState(store, ["users"], ["crm"], ["high_value", "vips"], ["users_table", "purchases_table"]);

  for (const mode of ["restart", "reload"] as const) {
    it(`by a ${mode}, with changes committed before the new publication was made`, { timeout: 120_000 }, async () => {
      const file = join(work, "config.json");
      const state = join(work, "state");
      let daemon = await start(file, shop("renamed", "pub_a"), state);
      try {
        await waitFor("the snapshot", async () => (daemon.state.countOf("records", "users") === 12 && quiet(daemon) ? true : undefined), 60_000);
        const writes = [
          `DELETE FROM users WHERE id = 3`,
          `UPDATE users SET name = 'changed' WHERE id = 4`,
          `INSERT INTO users (id, email, name, last_name, vip) VALUES (30, 'u30@example.com', 'name30', 'last30', true)`,
          `INSERT INTO purchases VALUES (300, 5, 99, 0, 'successful', 'sku1', '2026-03-01T00:00:00Z')`,
        ];
        if (mode === "restart") {
          await stop(daemon);
          for (const sql of writes) await db.query(sql);
          daemon = await start(file, shop("renamed", "pub_b"), state);
        } else {
          // The running sources stop at the reload: what is written then streams from the new publication.
          for (const sql of writes) await db.query(sql);
          await waitFor("the writes applied", async () => (daemon.state.getRecord("users", "30") && quiet(daemon) ? true : undefined));
          writeFileSync(file, JSON.stringify(shop("renamed", "pub_b")));
          // Written between the stop of the old stream and the new publication: the reload's own window,
          // made wide by writing before the publication exists on a connection the reload does not wait for.
          await db.query(`UPDATE users SET name = 'late' WHERE id = 6`);
          expect(await daemon.reload("test")).toBe("applied");
        }
        await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (31, 'u31@example.com', 'name31', 'last31', false)`);
        await waitFor("streaming from the new publication", async () => (daemon.state.getRecord("users", "31") && quiet(daemon) && daemon.notReady() === null ? true : undefined), 60_000);
        expect(daemon.state.getRecord("users", "3")).toBeUndefined();
        expect(daemon.state.getRecord("users", "4")?.values.name).toBe("changed");
        expect(daemon.state.getRecord("users", "6")?.values.name).toBe(mode === "reload" ? "late" : "name6");
        if (mode === "restart") {
          // Read again: both sources, each by a Run; the warning names the slot and the publication.
          expect(listRuns(daemon.state).filter((r) => r.kind === "reread" && r.state === "complete").map((r) => r.target).sort()).toEqual(["source purchases_table", "source users_table"]);
          expect(logs.find((l) => l.msg.startsWith("replication slot renamed holds changes committed before publication pub_b was created"))?.level).toBe(40);
        }
        const oracle = await start(join(work, "oracle.json"), shop("renamed_oracle", "pub_oracle", "crm_oracle"), join(work, "oracle"));
        try {
          await waitFor("the oracle", async () => (oracle.state.getRecord("users", "31") && quiet(oracle) ? true : undefined), 60_000);
          expect({ ...dump(daemon.state), remote: null }).toEqual({ ...dump(oracle.state), remote: null });
          const table = async (name: string) => (await db.query(`SELECT * FROM ${name} ORDER BY id`)).rows;
          expect(await table("crm")).toEqual(await table("crm_oracle"));
        } finally {
          await stop(oracle);
        }
      } finally {
        await stop(daemon);
      }
    });
  }
});
