// SIGKILL during a SIGHUP reload in flight: a daemon process started on one config is sent SIGHUP for
// another (the purchases source and its properties taken out, a group added) and killed with SIGKILL
// at a random instant of the reload (stopping the sources, committing, planning, its first Runs);
// the next start is on the config the file then holds, and is itself reloaded back to the other and
// killed, eight times, while the source keeps changing. The end is exactly a fresh daemon's on the
// last config over the same data.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { concreteShop as concrete, dumpDifferences, shopConfig, type Obj } from "../helpers/converge.js";
import { killIfRunning, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { finishAfterKills, killedAndFresh, killShop, startChangeWriter, type ChangeWriter } from "../helpers/kill.js";
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
    let writer: ChangeWriter | undefined;
    try {
      const shop = await killShop(db, work);
      // The source keeps changing through everything that follows.
      writer = startChangeWriter(db);
      let random = 11;
      let last = shopConfig();
      for (let cycle = 0; cycle < CYCLES; cycle += 1) {
        const http = `127.0.0.1:${await freePort()}`;
        daemon = startDaemon(shop.args, http);
        const running = daemon;
        await daemon.until("the daemon running", async () => (running.logs().includes('"msg":"grouparoo-stream running"') ? true : undefined), 180_000, 5);
        last = cycle % 2 === 0 ? changed() : shopConfig();
        writeFileSync(shop.config, JSON.stringify(concrete(last, db.url, "kill", "crm")));
        daemon.child.kill("SIGHUP");
        random = (random * 1103515245 + 12345) % 2147483648;
        await new Promise((r) => setTimeout(r, random % 600));
        daemon.child.kill("SIGKILL");
        expect((await daemon.exited).signal).toBe("SIGKILL");
      }
      // Left to finish, then the source's last change reaches the state and the destination; then the
      // oracle: a fresh daemon on the last config over the same final data.
      const steps = await finishAfterKills(db, shop, writer, "users");
      const { dump, oracle } = await killedAndFresh(db, shop, work, last, "users", [["users"], ["crm"], ["vips", "high_value", "named"], ["users_table", "purchases_table"]]);
      expect(dumpDifferences(dump, oracle)).toEqual([]);
      expect(dump).toEqual(oracle);
      // The last config is the first one: every field it maps is sent again by its export Run.
      expect((await db.query(`SELECT * FROM crm ORDER BY id`)).rows).toEqual((await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows);
      expect(steps).toBeGreaterThan(50);
    } finally {
      await writer?.stop().catch(() => undefined);
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
