// Runs under SIGKILL: a config change that needs every kind of Run (a group and a property removed, a
// source added and read again, aggregates rebuilt from stored rows, a group backfilled, a destination's
// records planned again), applied to a daemon process that is killed with SIGKILL five times while each
// kind of Run is in progress, and restarted, while the source keeps changing. Every Run resumes where
// it stopped, and the end is exactly a fresh daemon's on the new config over the same data.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { concreteShop as concrete, dumpDifferences, find, shopConfig, type Obj } from "../helpers/converge.js";
import { killIfRunning, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { finishAfterKills, killedAndFresh, killShop, runOfKind, startChangeWriter, type ChangeWriter } from "../helpers/kill.js";
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
    let writer: ChangeWriter | undefined;
    try {
      const shop = await killShop(db, work);
      // The source keeps changing through everything that follows.
      writer = startChangeWriter(db);
      writeFileSync(shop.config, JSON.stringify(concrete(changed(), db.url, "kill", "crm")));
      const killed = new Map<string, number>(KINDS.map((k) => [k, 0]));
      let random = 7;
      for (const kind of KINDS) {
        while ((killed.get(kind) ?? 0) < KILLS) {
          const http = `127.0.0.1:${await freePort()}`;
          daemon = startDaemon(shop.args, http);
          // Generous: on a loaded machine a restart may first wait out the killed walsender's slot.
          // Looked for every 10 ms (the log is read first, in memory): a Run found late is
          // killed late, and a fast machine could finish one in the time a slower probe takes.
          const seen = await daemon.until(`a ${kind} Run in progress (after ${killed.get(kind)} kills)`, runOfKind(daemon, http, kind), 180_000, 10);
          if (seen === "done") throw new Error(`the ${kind} Runs finished after ${killed.get(kind)} kills: make them longer`);
          random = (random * 1103515245 + 12345) % 2147483648;
          await new Promise((r) => setTimeout(r, random % 80));
          daemon.child.kill("SIGKILL");
          expect((await daemon.exited).signal).toBe("SIGKILL");
          killed.set(kind, (killed.get(kind) ?? 0) + 1);
        }
      }
      expect([...killed.values()]).toEqual(KINDS.map(() => KILLS));

      // Left to finish, then the source's last change reaches the state and the destination; then the
      // oracle: a fresh daemon on the new config over the same final data.
      const steps = await finishAfterKills(db, shop, writer, "users");
      const { dump, oracle } = await killedAndFresh(db, shop, work, changed(), "users", [["users"], ["crm"], ["high_value", "buyers", ...MORE_GROUPS], ["purchases_table", "refunds_table"]]);
      expect(dumpDifferences(dump, oracle)).toEqual([]);
      expect(dump).toEqual(oracle);
      expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
      expect(steps).toBeGreaterThan(50);
    } finally {
      await writer?.stop().catch(() => undefined);
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
