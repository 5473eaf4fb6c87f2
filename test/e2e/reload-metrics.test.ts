// What the sources report to /metrics (replication lag by app and by stream, snapshot progress) after a
// reload: an app the new config no longer has leaves no series behind (its last value would keep an
// alert such as GrouparooReplicationLagBytesHigh firing for the life of the process), and the apps of the
// new config report theirs, as after a restart on that config.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { shopConfig, SHOP_DATA, SHOP_SCHEMA, type Obj } from "../helpers/converge.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** The shop config read through app `appId` (its own slot and publication), without the destination. */
const shopThrough = (appId: string, url: string): Obj[] =>
  shopConfig()
    .filter((o) => o.class !== "destination")
    .map((o) =>
      o.class === "app" ? { ...o, id: appId, options: { connectionString: url, slot: `${appId}_slot`, publication: `${appId}_pub` } } : o.class === "source" ? { ...o, appId } : o,
    );

/** The label sets of a metric's series in a Prometheus text exposition. */
const seriesOf = (text: string, metric: string): string[] =>
  text
    .split("\n")
    .filter((line) => line.startsWith(`${metric}{`))
    .map((line) => line.slice(metric.length, line.lastIndexOf(" ")))
    .sort();

describe("the sources' metrics across a reload", () => {
  const work = mkdtempSync(join(tmpdir(), "reload-metrics-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("drops the lag series of an app the reloaded config no longer reads, and keeps the others'", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "reload_metrics");
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "config.json");
      const state = join(work, "state");
      // The shop through app shop_a, and the refunds, a model of their own, through app side_a.
      const refunds: Obj[] = [
        { class: "app", id: "side_a", type: "postgres", options: { connectionString: db.url, slot: "side_a_slot", publication: "side_a_pub" } },
        { class: "model", id: "refunds" },
        { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "side_a", modelId: "refunds", options: { table: "refunds" }, mapping: { id: "refund_id" } },
        { class: "property", id: "refund_id", type: "integer", unique: true, sourceId: "refunds_table", options: { column: "id" } },
      ];
      writeFileSync(config, JSON.stringify([...shopThrough("shop_a", db.url), ...refunds]));
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", state], http);
      const metrics = async () => (await get(http, "/metrics")).body;
      await daemon.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      await db.query(`INSERT INTO users (id, email, name) VALUES (13, 'u13@example.com', 'name13')`);
      await db.query(`INSERT INTO refunds (id, user_id, amount) VALUES (10, 1, 5)`);
      await daemon.until("both apps' lag reported, their changes streamed", async () => {
        const text = await metrics();
        return ["shop_a", "side_a"].every((app) => sample(text, `grouparoo_replication_lag_bytes{app="${app}"}`) !== undefined && sample(text, `grouparoo_replication_lag_seconds{stream="postgres:${app}"}`) !== undefined) ? true : undefined;
      });
      const before = await metrics();
      expect(seriesOf(before, "grouparoo_replication_lag_bytes")).toEqual(['{app="shop_a"}', '{app="side_a"}']);
      // The initial snapshots' streams ended: they have no series left.
      expect(seriesOf(before, "grouparoo_replication_lag_seconds")).toEqual(['{stream="postgres:shop_a"}', '{stream="postgres:side_a"}']);

      // side_a and the refunds leave the config.
      writeFileSync(config, JSON.stringify(shopThrough("shop_a", db.url)));
      daemon.child.kill("SIGHUP");
      await daemon.until("the reload applied", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="applied"}') === 1 ? true : undefined));
      await daemon.until("ready again", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      await db.query(`INSERT INTO users (id, email, name) VALUES (14, 'u14@example.com', 'name14')`);
      await daemon.until("app shop_a's lag reported again, its change streamed", async () => {
        const text = await metrics();
        return sample(text, 'grouparoo_replication_lag_bytes{app="shop_a"}') !== undefined && sample(text, 'grouparoo_replication_lag_seconds{stream="postgres:shop_a"}') !== undefined && sample(text, 'grouparoo_records{model="users"}') === 14
          ? true
          : undefined;
      });
      // Past a few lag polls (every 5 s) of what the stopped connector could still have had in flight.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      const after = await metrics();
      expect(seriesOf(after, "grouparoo_replication_lag_bytes")).toEqual(['{app="shop_a"}']);
      expect(seriesOf(after, "grouparoo_replication_lag_seconds")).toEqual(['{stream="postgres:shop_a"}']);
      expect(seriesOf(after, "grouparoo_snapshot_rows_read")).toEqual([]);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });

  it("stays put, with every series, when a reload finds the config unchanged", { timeout: 60_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "reload_metrics");
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "same.json");
      writeFileSync(config, JSON.stringify(shopThrough("shop_c", db.url)));
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", join(work, "state-same")], http);
      const metrics = async () => (await get(http, "/metrics")).body;
      await daemon.until("app shop_c's lag reported", async () => (sample(await metrics(), 'grouparoo_replication_lag_bytes{app="shop_c"}') !== undefined ? true : undefined), 30_000);
      daemon.child.kill("SIGHUP");
      await daemon.until("the reload found it unchanged", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="unchanged"}') === 1 ? true : undefined));
      expect(seriesOf(await metrics(), "grouparoo_replication_lag_bytes")).toEqual(['{app="shop_c"}']);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
