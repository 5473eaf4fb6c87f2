// Removal Runs under SIGKILL: the model renamed (users to customers: a remove-model of users, its
// sources read again into customers, the groups evaluated and the destination's records planned again
// there) and a source taken out (purchases_table, with the properties it fed), applied to a daemon
// process that is killed with SIGKILL five times while each removal Run is in progress, and restarted,
// while the source keeps changing. test/e2e/run-kill.test.ts kills the other kinds; the end is exactly
// a fresh daemon's on the new config over the same data.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { concreteShop as concrete, dumpDifferences, shopConfig, type Obj } from "../helpers/converge.js";
import { killIfRunning, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { finishAfterKills, killedAndFresh, killShop, runOfKind, startChangeWriter, type ChangeWriter } from "../helpers/kill.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** Up to five kills during each removal Run, at least two (the rest may finish before it is caught). */
const KILLS = 5;
const MIN_KILLS = 2;

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
    let writer: ChangeWriter | undefined;
    try {
      const shop = await killShop(db, work);
      // The source keeps changing through everything that follows.
      writer = startChangeWriter(db);
      const killed = new Map<string, number>(PHASES.map((p) => [p.kind, 0]));
      let random = 7;
      for (const { kind, config: next } of PHASES) {
        writeFileSync(shop.config, JSON.stringify(concrete(next(), db.url, "kill", "crm")));
        while ((killed.get(kind) ?? 0) < KILLS) {
          const http = `127.0.0.1:${await freePort()}`;
          daemon = startDaemon(shop.args, http);
          const seen = await daemon.until(`a ${kind} Run in progress (after ${killed.get(kind)} kills)`, runOfKind(daemon, http, kind), 180_000, 5);
          if (seen === "done") {
            // Each kill leaves less to remove: a fast machine may finish the last part uncaught.
            if ((killed.get(kind) ?? 0) >= MIN_KILLS) {
              await killIfRunning(daemon);
              break;
            }
            throw new Error(`the ${kind} Runs finished after ${killed.get(kind)} kills: make them longer`);
          }
          random = (random * 1103515245 + 12345) % 2147483648;
          await new Promise((r) => setTimeout(r, random % 40));
          daemon.child.kill("SIGKILL");
          expect((await daemon.exited).signal).toBe("SIGKILL");
          killed.set(kind, (killed.get(kind) ?? 0) + 1);
        }
      }
      for (const [kind, n] of killed) expect(n, kind).toBeGreaterThanOrEqual(MIN_KILLS);

      // Left to finish, then the source's last change reaches the state and the destination; then the
      // oracle: a fresh daemon on the new config over the same final data.
      const steps = await finishAfterKills(db, shop, writer, "customers");
      const { dump, oracle } = await killedAndFresh(db, shop, work, changed(), "customers", [["users", "customers"], ["crm"], ["vips", "high_value"], ["users_table", "purchases_table"]]);
      expect(dumpDifferences(dump, oracle)).toEqual([]);
      expect(dump).toEqual(oracle);
      // Only what the new config maps: fields no longer mapped (ltv, purchases) stay as the table held them (README, "Config changes").
      expect((await db.query(`SELECT id, email, name, segments FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT id, email, name, segments FROM crm_oracle ORDER BY id`)).rows);
      expect(steps).toBeGreaterThan(50);
    } finally {
      await writer?.stop().catch(() => undefined);
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
