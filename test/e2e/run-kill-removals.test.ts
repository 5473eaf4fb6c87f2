// Removal Runs under SIGKILL: the model renamed (users to customers: a remove-model of users, its
// sources read again into customers, the groups evaluated and the destination's records planned again
// there) and a source taken out (purchases_table, with the properties it fed), applied to a daemon
// process that is killed with SIGKILL five times while each removal Run is in progress, and restarted,
// while the source keeps changing. test/e2e/run-kill.test.ts kills the other kinds; the end is exactly
// a fresh daemon's on the new config over the same data.
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

const KILLS = 5;

/** First the purchases source taken out (with the properties and the group it fed): a remove-source Run. */
function withoutPurchases(): Obj[] {
  const gone = new Set(["purchases_table", "purchase_count", "lifetime_value", "max_amount", "high_value"]);
  const objects = shopConfig().filter((o) => !gone.has(o.id as string));
  for (const o of objects) {
    if (o.id === "crm") {
      o.mapping = { id: "user_id", email: "email", name: "name" };
      o.destinationGroupMemberships = { VIP: "vips" };
    }
  }
  return objects;
}

/** Then the model renamed (users to customers): a remove-model Run, the source read again into customers. */
function changed(): Obj[] {
  return withoutPurchases().map((o) => (o.class === "model" ? { ...o, id: "customers" } : o.modelId === "users" ? { ...o, modelId: "customers" } : o));
}

const PHASES = [
  { kind: "remove-source", config: withoutPurchases },
  { kind: "remove-model", config: changed },
] as const;

describe("removal Runs under SIGKILL", () => {
  const work = mkdtempSync(join(tmpdir(), "run-kill-removals-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(`resume where they stopped after ${KILLS} kills during each kind, and end as a fresh daemon`, { timeout: 900_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "run_kill_removals");
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

      const killed = new Map<string, number>(PHASES.map((p) => [p.kind, 0]));
      let random = 7;
      for (const { kind, config: next } of PHASES) {
        writeFileSync(config, JSON.stringify(concrete(next(), db.url, "kill", "crm")));
        while ((killed.get(kind) ?? 0) < KILLS) {
          http = `127.0.0.1:${await freePort()}`;
          daemon = startDaemon(args, http);
          const running = daemon;
          const seen = await daemon.until(`a ${kind} Run in progress (after ${killed.get(kind)} kills)`, async () => {
            const lines = running.logs().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string; kind?: string; run?: string });
            const begun = lines.filter((l) => l.kind === kind && (l.msg === "run started" || l.msg === "run resumed")).map((l) => l.run);
            const over = new Set(lines.filter((l) => l.kind === kind && l.msg === "run complete").map((l) => l.run));
            if (begun.some((run) => !over.has(run))) return "running";
            const text = (await get(http, "/metrics").catch(() => ({ body: "" }))).body;
            const done = sample(text, `grouparoo_runs{kind="${kind}",state="complete"}`) ?? 0;
            const open = ["queued", "running"].reduce((n, s) => n + (sample(text, `grouparoo_runs{kind="${kind}",state="${s}"}`) ?? 0), 0);
            return done > 0 && open === 0 ? "done" : undefined;
          }, 180_000, 5);
          if (seen === "done") throw new Error(`the ${kind} Runs finished after ${killed.get(kind)} kills: make them longer`);
          random = (random * 1103515245 + 12345) % 2147483648;
          await new Promise((r) => setTimeout(r, random % 40));
          daemon.child.kill("SIGKILL");
          expect((await daemon.exited).signal).toBe("SIGKILL");
          killed.set(kind, (killed.get(kind) ?? 0) + 1);
        }
      }
      expect([...killed.values()]).toEqual(PHASES.map(() => KILLS));

      // Left to finish, then the source's last change reaches the state and the destination.
      http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(args, http);
      await daemon.until("every Run done", async () => (runsAllDone((await get(http, "/metrics")).body) ? true : undefined), 120_000);
      writing = false;
      await writer;
      await db.query(`INSERT INTO users (id, email, name) VALUES (999999, 'last@example.com', 'last')`);
      await daemon.until("the last change delivered", async () => {
        const text = (await get(http, "/metrics")).body;
        return sample(text, 'grouparoo_records{model="customers"}') === 20001 && sample(text, 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined;
      }, 120_000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      // The oracle: a fresh daemon on the new config over the same final data.
      const oracleConfig = join(work, "oracle.json");
      writeFileSync(oracleConfig, JSON.stringify(concrete(changed(), db.url, "oracle", "crm_oracle")));
      const oracle = await Daemon.start({ config: oracleConfig, state: join(work, "oracle-state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "silent" }));
      if (typeof oracle === "number") throw new Error(`the oracle did not start (${oracle})`);
      await waitFor("the oracle read everything", async () => (oracle.state.getRecord("customers", "999999") && (oracle.runs?.pending().length ?? 1) === 0 && oracle.state.outboxDepth("crm") === 0 ? true : undefined), 120_000);
      const args5 = [["users", "customers"], ["crm"], ["vips", "high_value"], ["users_table", "purchases_table"]] as const;
      const oracleDump = dumpState(oracle.state, ...args5);
      await oracle.drain("SIGTERM");
      await oracle.finished;
      const store = Store.open(state);
      const dump = dumpState(store, ...args5);
      await store.close();
      expect({ ...dump, remote: null }).toEqual({ ...oracleDump, remote: null });
      // Only what the new config maps: fields no longer mapped (ltv, purchases) stay as the table held them (README, "Config changes").
      expect((await db.query(`SELECT id, email, name, segments FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT id, email, name, segments FROM crm_oracle ORDER BY id`)).rows);
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
