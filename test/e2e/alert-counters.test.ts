// The counters the alert rules watch with increase() (GrouparooDeadLetters, GrouparooExportsDeadLettered)
// and rate() (GrouparooExportsFailing) exist at 0 from the daemon's start, for every source and
// destination of the config, and for those a reload adds. Before 2026-12-03 a series appeared with its
// first event, at 1: Prometheus's increase() over a series without an earlier sample is 0, so the first
// dead letter since a start (one bad row, one export a destination refused) never fired an alert.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { concreteShop, shopConfig, SHOP_DATA, SHOP_SCHEMA, type Obj } from "../helpers/converge.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** Every sample of `metric` in a Prometheus text exposition, as "{labels} value" lines, sorted. */
const samplesOf = (text: string, metric: string): string[] =>
  text
    .split("\n")
    .filter((line) => line.startsWith(`${metric}{`))
    .map((line) => line.slice(metric.length))
    .sort();

describe("the counters the alerts watch", () => {
  const work = mkdtempSync(join(tmpdir(), "alert-counters-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("start at 0 for every source and destination, and for those a reload adds", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "alert_counters");
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "config.json");
      const objects: Obj[] = concreteShop(shopConfig(), db.url, "alert_counters", "crm");
      writeFileSync(config, JSON.stringify(objects));
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", join(work, "state")], http);
      const metrics = async () => (await get(http, "/metrics")).body;
      await daemon.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      // The snapshot's 12 users delivered. A record may be sent more than once (the snapshot's rows can
      // come in more than one batch, and a purchase's batch changes a user already sent), so the wait
      // is on the destination's table and an empty outbox, not on a count of exports.
      await daemon.until(
        "the snapshot delivered",
        async () => (Number((await db.query("SELECT count(*) AS n FROM crm")).rows[0]?.n) === 12 && sample(await metrics(), 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined),
        60_000,
      );
      const before = await metrics();
      const sent = sample(before, 'grouparoo_exports_total{destination="crm",result="ok"}') ?? 0;
      expect(sent).toBeGreaterThanOrEqual(12);
      expect(samplesOf(before, "grouparoo_exports_total")).toEqual([
        '{destination="crm",result="dead_letter"} 0',
        '{destination="crm",result="info"} 0',
        `{destination="crm",result="ok"} ${sent}`,
        '{destination="crm",result="retry"} 0',
      ]);
      expect(samplesOf(before, "grouparoo_dead_letters_total")).toEqual([
        '{component="crm",kind="export"} 0',
        '{component="purchases_table",kind="change"} 0',
        '{component="purchases_table",kind="message"} 0',
        '{component="users_table",kind="change"} 0',
        '{component="users_table",kind="message"} 0',
      ]);

      // A second destination, on the other CRM table.
      const oracle = { ...(objects.find((o) => o.id === "crm") as Obj), id: "crm_oracle", options: { table: "crm_oracle", primaryKey: "id", groupsColumn: "segments" } };
      writeFileSync(config, JSON.stringify([...objects, oracle]));
      daemon.child.kill("SIGHUP");
      await daemon.until("the reload applied", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="applied"}') === 1 ? true : undefined), 30_000);
      const after = await metrics();
      for (const result of ["dead_letter", "info", "retry"]) expect(sample(after, `grouparoo_exports_total{destination="crm_oracle",result="${result}"}`), result).toBe(0);
      expect(sample(after, 'grouparoo_dead_letters_total{component="crm_oracle",kind="export"}')).toBe(0);
      // The first destination's counts go on from where they were.
      expect(sample(after, 'grouparoo_exports_total{destination="crm",result="ok"}')).toBe(sent);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
