// Runs over a polling source under SIGKILL: a postgres-table-import replaced (another watermark
// column: its rows removed, read again, its aggregates rebuilt) in a daemon process killed with
// SIGKILL while those Runs go on, then the change undone (the first config again) and killed once
// more, while rows keep being inserted. The end is exactly a fresh daemon's on the last config.
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

const USERS = 3000;
const REFUNDS = 60_000;

function withRefundRows(watermark: string): Obj[] {
  return [
    ...shopConfig(),
    { class: "source", id: "refund_rows", type: "postgres-table-import", appId: "shop", modelId: "users", options: { table: "refunds", highWatermarkColumn: watermark, batchSize: 500 }, mapping: { user_id: "user_id" } },
    { class: "property", id: "refunded", type: "float", sourceId: "refund_rows", options: { column: "amount", aggregationMethod: "sum" } },
    { class: "property", id: "refund_count", type: "integer", sourceId: "refund_rows", options: { column: "id", aggregationMethod: "count" } },
    { class: "group", id: "refunders", modelId: "users", rules: [{ propertyId: "refund_count", op: "gt", match: 20 }] },
    { class: "schedule", id: "refunds_often", sourceId: "refund_rows", recurringFrequency: 1000 },
  ];
}

describe("Runs over a polling source under SIGKILL", () => {
  const work = mkdtempSync(join(tmpdir(), "polling-run-kill-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("resume after kills during a replaced table import's Runs and its undoing, and end as a fresh daemon", { timeout: 600_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "polling_run_kill");
    let daemon: DaemonProcess | undefined;
    let writing = true;
    try {
      for (const sql of SHOP_SCHEMA) await db.query(sql);
      await db.query(`INSERT INTO users (id, email, name, vip) SELECT g, 'u' || g || '@example.com', 'n' || g, g % 3 = 0 FROM generate_series(1, ${USERS}) g`);
      await db.query(`INSERT INTO refunds SELECT g, 1 + (g * 7) % ${USERS}, g % 13 FROM generate_series(1, ${REFUNDS}) g`);
      const config = join(work, "config.json");
      const state = join(work, "state");
      const args = ["--config", config, "--state", state, "--max-batch-delay-ms", "2"];
      const first = withRefundRows("id");
      writeFileSync(config, JSON.stringify(concrete(first, db.url, "kill", "crm")));
      let http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(args, http);
      await daemon.until("the first config read", async () => (sample((await get(http, "/metrics")).body, 'grouparoo_records{model="users"}') === USERS ? true : undefined), 60_000);
      await new Promise((r) => setTimeout(r, 3000));
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      // Refunds keep coming (new ids: a table import by id sees every one).
      let next = REFUNDS;
      const writer = (async () => {
        while (writing) {
          next += 1;
          await db.query(`INSERT INTO refunds VALUES ($1, $2, $3)`, [next, 1 + ((next * 13) % USERS), next % 11]);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      const killDuring = async (kinds: readonly string[], label: string): Promise<void> => {
        http = `127.0.0.1:${await freePort()}`;
        daemon = startDaemon(args, http);
        const running = daemon;
        const seen = await daemon.until(`${label}: a Run in progress`, async () => {
          const lines = running.logs().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string; kind?: string; run?: string });
          const begun = lines.filter((l) => kinds.includes(l.kind ?? "") && (l.msg === "run started" || l.msg === "run resumed")).map((l) => l.run);
          const over = new Set(lines.filter((l) => l.msg === "run complete").map((l) => l.run));
          return begun.some((run) => !over.has(run)) ? "running" : undefined;
        }, 120_000, 10);
        expect(seen).toBe("running");
        await new Promise((r) => setTimeout(r, 30));
        running.child.kill("SIGKILL");
        expect((await running.exited).signal).toBe("SIGKILL");
      };

      // Replaced: another watermark column (amount: thousands of ties per value, pages of 500).
      writeFileSync(config, JSON.stringify(concrete(withRefundRows("amount"), db.url, "kill", "crm")));
      await killDuring(["remove-source", "remove-property"], "the replaced source's removal");
      await killDuring(["reread"], "its re-read");
      await killDuring(["reread", "rebuild"], "its re-read or rebuild");
      // Undone while its Runs are cut short: the first config again.
      writeFileSync(config, JSON.stringify(concrete(first, db.url, "kill", "crm")));
      await killDuring(["remove-source", "remove-property", "reread", "rebuild"], "the undoing");

      http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(args, http);
      await daemon.until("every Run done", async () => (runsAllDone((await get(http, "/metrics")).body) ? true : undefined), 180_000);
      writing = false;
      await writer;
      // The last refund and a last user: once both are in (and delivered), everything before is.
      await db.query(`INSERT INTO users (id, email, name) VALUES (999999, 'last@example.com', 'last')`);
      await db.query(`INSERT INTO refunds VALUES ($1, 999999, 5)`, [next + 1]);
      await daemon.until("the last changes delivered", async () => {
        const text = (await get(http, "/metrics")).body;
        return sample(text, 'grouparoo_records{model="users"}') === USERS + 1 && sample(text, 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined;
      }, 120_000);
      await new Promise((r) => setTimeout(r, 3000)); // a scheduled run past the last refund
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);

      const oracleConfig = join(work, "oracle.json");
      writeFileSync(oracleConfig, JSON.stringify(concrete(first, db.url, "oracle", "crm_oracle")));
      const oracle = await Daemon.start({ config: oracleConfig, state: join(work, "oracle-state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "silent" }));
      if (typeof oracle === "number") throw new Error(`the oracle did not start (${oracle})`);
      await waitFor("the oracle read everything", async () => (oracle.state.getRecord("users", "999999")?.values.refunded === 5 && (oracle.runs?.pending().length ?? 1) === 0 && oracle.state.outboxDepth("crm") === 0 ? true : undefined), 120_000);
      await new Promise((r) => setTimeout(r, 2000));
      await waitFor("the oracle delivered", async () => (oracle.state.outboxDepth("crm") === 0 ? true : undefined), 60_000);
      const dumpArgs = [["users"], ["crm"], ["high_value", "vips", "refunders"], ["purchases_table", "refund_rows"]] as const;
      const oracleDump = dumpState(oracle.state, ...dumpArgs);
      await oracle.drain("SIGTERM");
      await oracle.finished;
      const store = Store.open(state);
      const dump = dumpState(store, ...dumpArgs);
      expect(store.getRecord("users", "999999")?.values.refunded).toBe(5);
      await store.close();
      expect({ ...dump, remote: null }).toEqual({ ...oracleDump, remote: null });
      expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
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
