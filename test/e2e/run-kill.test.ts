// Runs under SIGKILL: a config change that needs every kind of Run (a group and a property removed, a
// source added and read again, aggregates rebuilt from stored rows, a group backfilled, a destination's
// records planned again), applied to a daemon process that is killed with SIGKILL five times while each
// kind of Run is in progress, and restarted, while the source keeps changing. Every Run resumes where
// it stopped, and the end is exactly a fresh daemon's on the new config over the same data.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { concreteShop as concrete, dumpDifferences, dumpState, find, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { get, sample, startDaemon, waitFor, type DaemonProcess, runsAllDone } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const KILLS = 5;
const KINDS = ["remove-group", "remove-property", "reread", "rebuild", "backfill", "export"] as const;
/**
 * Groups the new config adds beside "buyers", each its own backfill Run (Runs go one at a time). A
 * backfill reads 2,000 records a transaction, so one over 20,000 records is ten commits: a fast
 * machine finished it before it was caught five times (CI on 2026-12-01: "finished after 0 kills").
 * 25 in a row last long enough there, and cost a slow machine seconds, not minutes.
 */
const MORE_GROUPS = Array.from({ length: 24 }, (_, i) => `buyers_${i + 1}`);

/** The new config: every kind of Run at once. */
function changed(): Obj[] {
  const objects = shopConfig().filter((o) => o.id !== "vips" && o.id !== "max_amount");
  const crm = find(objects, "crm");
  crm.destinationGroupMemberships = { "High Value": "high_value", Buyer: "buyers" };
  crm.mapping = { id: "user_id", email: "email", name: "name", ltv: "lifetime_value", purchases: "largest" };
  objects.push(
    { class: "property", id: "largest", type: "integer", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "max" } },
    { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } },
    { class: "property", id: "refund_total", type: "float", sourceId: "refunds_table", options: { column: "amount", aggregationMethod: "sum" } },
    { class: "group", id: "buyers", modelId: "users", rules: [{ propertyId: "purchase_count", op: "gt", match: 2 }] },
    ...MORE_GROUPS.map((id, i) => ({ class: "group", id, modelId: "users", rules: [{ propertyId: "purchase_count", op: "gt", match: i % 6 }] })),
  );
  return objects;
}

describe("Runs under SIGKILL", () => {
  const work = mkdtempSync(join(tmpdir(), "run-kill-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(`resume where they stopped after ${KILLS} kills during each kind, and end as a fresh daemon`, { timeout: 900_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "run_kill");
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

      writeFileSync(config, JSON.stringify(concrete(changed(), db.url, "kill", "crm")));
      const killed = new Map<string, number>(KINDS.map((k) => [k, 0]));
      let random = 7;
      for (const kind of KINDS) {
        while ((killed.get(kind) ?? 0) < KILLS) {
          http = `127.0.0.1:${await freePort()}`;
          daemon = startDaemon(args, http);
          const running = daemon;
          const seen = await daemon.until(`a ${kind} Run in progress (after ${killed.get(kind)} kills)`, async () => {
            // From its log: the sources and Runs start while the listener's thread still boots, and
            // a short Run may be over before /metrics answers.
            const lines = running.logs().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string; kind?: string; run?: string });
            const begun = lines.filter((l) => l.kind === kind && (l.msg === "run started" || l.msg === "run resumed")).map((l) => l.run);
            const over = new Set(lines.filter((l) => l.kind === kind && l.msg === "run complete").map((l) => l.run));
            if (begun.some((run) => !over.has(run))) return "running";
            const text = (await get(http, "/metrics").catch(() => ({ body: "" }))).body;
            const done = sample(text, `grouparoo_runs{kind="${kind}",state="complete"}`) ?? 0;
            const open = ["queued", "running"].reduce((n, s) => n + (sample(text, `grouparoo_runs{kind="${kind}",state="${s}"}`) ?? 0), 0);
            return done > 0 && open === 0 ? "done" : undefined;
            // Generous: on a loaded machine a restart may first wait out the killed walsender's slot.
            // Looked for every 10 ms (the log is read first, in memory): a Run found late is
            // killed late, and a fast machine could finish one in the time a slower probe takes.
          }, 180_000, 10);
          if (seen === "done") throw new Error(`the ${kind} Runs finished after ${killed.get(kind)} kills: make them longer`);
          random = (random * 1103515245 + 12345) % 2147483648;
          await new Promise((r) => setTimeout(r, random % 80));
          daemon.child.kill("SIGKILL");
          expect((await daemon.exited).signal).toBe("SIGKILL");
          killed.set(kind, (killed.get(kind) ?? 0) + 1);
        }
      }
      expect([...killed.values()]).toEqual(KINDS.map(() => KILLS));

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
      writeFileSync(oracleConfig, JSON.stringify(concrete(changed(), db.url, "oracle", "crm_oracle")));
      const oracle = await Daemon.start({ config: oracleConfig, state: join(work, "oracle-state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "silent" }));
      if (typeof oracle === "number") throw new Error(`the oracle did not start (${oracle})`);
      await waitFor("the oracle read everything", async () => (oracle.state.getRecord("users", "999999") && (oracle.runs?.pending().length ?? 1) === 0 && oracle.state.outboxDepth("crm") === 0 ? true : undefined), 120_000);
      const args5 = [["users"], ["crm"], ["high_value", "buyers", ...MORE_GROUPS], ["purchases_table", "refunds_table"]] as const;
      const oracleDump = dumpState(oracle.state, ...args5);
      await oracle.drain("SIGTERM");
      await oracle.finished;
      const store = Store.open(state);
      const dump = dumpState(store, ...args5);
      await store.close();
      expect(dumpDifferences({ ...dump, remote: {} }, { ...oracleDump, remote: {} })).toEqual([]);
      expect({ ...dump, remote: null }).toEqual({ ...oracleDump, remote: null });
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
