// SIGKILL during a SIGHUP reload in flight: a daemon process started on one config is sent SIGHUP for
// another (the purchases source and its properties taken out, a group added) and killed with SIGKILL
// at a random instant of the reload (stopping the sources, committing, planning, its first Runs);
// the next start is on the config the file then holds, and is itself reloaded back to the other and
// killed, eight times, while the source keeps changing. The end is exactly a fresh daemon's on the
// last config over the same data.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { concreteShop as concrete, dumpState, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { get, sample, startDaemon, waitFor, type DaemonProcess, runsAllDone } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const CYCLES = 8;

/** The other config: the purchases source taken out (with what it fed), a group added. */
function changed(): Obj[] {
  const gone = new Set(["purchases_table", "purchase_count", "lifetime_value", "max_amount", "high_value"]);
  const objects = shopConfig().filter((o) => !gone.has(o.id as string));
  for (const o of objects) {
    if (o.id === "crm") {
      o.mapping = { id: "user_id", email: "email", name: "name" };
      o.destinationGroupMemberships = { VIP: "vips", Named: "named" };
    }
  }
  objects.push({ class: "group", id: "named", modelId: "users", rules: [{ propertyId: "name", op: "like", match: "n1%" }] });
  return objects;
}

describe("SIGKILL during a reload", () => {
  const work = mkdtempSync(join(tmpdir(), "reload-kill-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(`ends as a fresh daemon after ${CYCLES} kills during reloads`, { timeout: 900_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "reload_kill");
    let daemon: DaemonProcess | undefined;
    let writing = true;
    try {
      for (const sql of SHOP_SCHEMA) await db.query(sql);
      await db.query(`INSERT INTO users (id, email, name, vip) SELECT g, 'u' || g || '@example.com', 'n' || g, g % 3 = 0 FROM generate_series(1, 20000) g`);
      await db.query(`INSERT INTO purchases SELECT g, 1 + g % 20000, g % 97, 0, CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'successful' END, 'sku', '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(1, 60000) g`);
      await db.query(`INSERT INTO refunds SELECT g, 1 + (g * 7) % 20000, g % 13 FROM generate_series(1, 10000) g`);
      const config = join(work, "config.json");
      const state = join(work, "state");
      const args = ["--config", config, "--state", state, "--max-batch-delay-ms", "2"];
      writeFileSync(config, JSON.stringify(concrete(shopConfig(), db.url, "kill", "crm")));
      let http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(args, http);
      await daemon.until("the first config read", async () => (sample((await get(http, "/metrics")).body, 'grouparoo_records{model="users"}') === 20000 ? true : undefined), 60_000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      // The source keeps changing through everything that follows.
      let step = 0;
      const writer = (async () => {
        while (writing) {
          step += 1;
          const user = 1 + ((step * 37) % 20000);
          await db.query(`INSERT INTO purchases VALUES ($1, $2, $3, 0, 'successful', 'sku', now()) ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount`, [100000 + (step % 500), user, step % 90]);
          if (step % 5 === 0) await db.query(`UPDATE users SET vip = NOT vip, name = 'w' || $2 WHERE id = $1`, [user, step]);
          if (step % 7 === 0) await db.query(`DELETE FROM refunds WHERE id = $1`, [1 + ((step * 11) % 10000)]);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      let random = 11;
      let last = shopConfig();
      for (let cycle = 0; cycle < CYCLES; cycle += 1) {
        http = `127.0.0.1:${await freePort()}`;
        daemon = startDaemon(args, http);
        const running = daemon;
        await daemon.until("the daemon running", async () => (running.logs().includes('"msg":"grouparoo-stream running"') ? true : undefined), 180_000, 5);
        last = cycle % 2 === 0 ? changed() : shopConfig();
        writeFileSync(config, JSON.stringify(concrete(last, db.url, "kill", "crm")));
        daemon.child.kill("SIGHUP");
        random = (random * 1103515245 + 12345) % 2147483648;
        await new Promise((r) => setTimeout(r, random % 600));
        daemon.child.kill("SIGKILL");
        expect((await daemon.exited).signal).toBe("SIGKILL");
      }
      // Left to finish, then the source's last change reaches the state and the destination.
      http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(args, http);
      await daemon.until("every Run done", async () => (runsAllDone((await get(http, "/metrics")).body) ? true : undefined), 120_000);
      writing = false;
      await writer;
      await db.query(`INSERT INTO users (id, email, name) VALUES (999999, 'last@example.com', 'last')`);
      await daemon.until("the last change delivered", async () => {
        const text = (await get(http, "/metrics")).body;
        return sample(text, 'grouparoo_records{model="users"}') === 20001 && sample(text, 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined;
      }, 120_000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      // The oracle: a fresh daemon on the new config over the same final data.
      const oracleConfig = join(work, "oracle.json");
      writeFileSync(oracleConfig, JSON.stringify(concrete(last, db.url, "oracle", "crm_oracle")));
      const oracle = await Daemon.start({ config: oracleConfig, state: join(work, "oracle-state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "silent" }));
      if (typeof oracle === "number") throw new Error(`the oracle did not start (${oracle})`);
      await waitFor("the oracle read everything", async () => (oracle.state.getRecord("users", "999999") && (oracle.runs?.pending().length ?? 1) === 0 && oracle.state.outboxDepth("crm") === 0 ? true : undefined), 120_000);
      const args5 = [["users"], ["crm"], ["vips", "high_value", "named"], ["users_table", "purchases_table"]] as const;
      const oracleDump = dumpState(oracle.state, ...args5);
      await oracle.drain("SIGTERM");
      await oracle.finished;
      const store = Store.open(state);
      const dump = dumpState(store, ...args5);
      await store.close();
      expect({ ...dump, remote: null }).toEqual({ ...oracleDump, remote: null });
      // The last config is the first one: every field it maps is sent again by its export Run.
      expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
      expect(step).toBeGreaterThan(50);
    } finally {
      writing = false;
      if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
      }
      await db.drop();
    }
  });
});
