// Reloading the config of a running daemon process: SIGHUP with an invalid config keeps the running one
// (every error logged, counted as invalid), as does a valid one naming a table the database does not
// have (the start's live check), with a valid one applies it live (its Runs start, the new
// group fills); --watch-config reloads when a file changes; `runs` lists the Runs and `rebuild` asks for
// one beside the running daemon; --watch-config applies a change made while the daemon started; a
// SIGHUP before the program is even loaded reloads once it runs, and SIGHUPs that arrive while a
// reload runs add one more reload, not one each.
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { runCli } from "../helpers/cli.js";
import { shopConfig, SHOP_DATA, SHOP_SCHEMA, type Obj } from "../helpers/converge.js";
import { get, sample, startDaemon, waitFor, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const concrete = (objects: Obj[], url: string): Obj[] =>
  objects.map((o) => (o.class === "app" ? { ...o, options: { connectionString: url, slot: "reload_slot", publication: "reload_pub" } } : o));

describe("reloading the config", () => {
  const work = mkdtempSync(join(tmpdir(), "reload-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("refuses an invalid config on SIGHUP, and one the live check refuses, applies a valid one live, and follows --watch-config", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "reload");
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "config.json");
      const state = join(work, "state");
      writeFileSync(config, JSON.stringify(concrete(shopConfig(), db.url)));
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", state, "--watch-config"], http);
      const metrics = async () => (await get(http, "/metrics")).body;
      await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      await waitFor("the records", async () => (sample(await metrics(), 'grouparoo_records{model="users"}') === 12 ? true : undefined));

      // An invalid config: refused, the running one kept, every error in the log.
      const invalid = concrete(shopConfig(), db.url).map((o) => (o.id === "high_value" ? { ...o, rules: [{ propertyId: "nope", op: "gt", match: 1 }] } : o));
      writeFileSync(config, JSON.stringify(invalid));
      await waitFor("the invalid reload counted", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="invalid"}') === 1 ? true : undefined));
      expect(daemon.logs()).toContain('rules[0].propertyId: no property with id \\"nope\\"');
      expect(daemon.logs()).toContain("the new config is invalid: the running config is kept");
      expect((await get(http, "/readyz")).status).toBe(200);

      // A valid config naming a table the database does not have: refused by the live check a start
      // runs, the running one kept and still streaming.
      const missingTable = concrete(shopConfig(), db.url).map((o) => (o.id === "purchases_table" ? { ...o, options: { table: "no_such_purchases" } } : o));
      writeFileSync(config, JSON.stringify(missingTable));
      await waitFor("the live-check refusal counted", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="invalid"}') === 2 ? true : undefined));
      expect(daemon.logs()).toContain('source \\"purchases_table\\": table public.no_such_purchases does not exist; the new config is refused');
      expect(daemon.logs()).toContain("the new config does not match the live systems: the running config is kept");
      expect(sample(await metrics(), 'grouparoo_config_reload_total{result="applied"}') ?? 0).toBe(0);
      expect((await get(http, "/readyz")).status).toBe(200);
      await db.query(`INSERT INTO users (id, email, name) VALUES (13, 'u13@example.com', 'name13')`);
      await waitFor("the running config still streaming", async () => (sample(await metrics(), 'grouparoo_records{model="users"}') === 13 ? true : undefined));

      // SIGHUP with a valid config that adds a group: applied live, its backfill Run fills it.
      const withGroup = [...concrete(shopConfig(), db.url), { class: "group", id: "big", modelId: "users", rules: [{ propertyId: "max_amount", op: "gt", match: 90 }] }];
      writeFileSync(config, JSON.stringify(withGroup));
      daemon.child.kill("SIGHUP");
      await waitFor("the valid reload applied", async () => ((sample(await metrics(), 'grouparoo_config_reload_total{result="applied"}') ?? 0) >= 1 ? true : undefined));
      const { rows } = await db.query<{ n: string }>(`SELECT count(DISTINCT user_id) AS n FROM purchases WHERE amount > 90`);
      // The backfill Run's chunks count their transitions like batches of changes do (once a chunk is
      // durable, a moment after its members are visible), and the Run completes in a later transaction.
      await waitFor("the new group filled, its transitions counted, its Run complete", async () => {
        const text = await metrics();
        const filled = sample(text, 'grouparoo_group_members{group="big"}') === Number(rows[0]?.n);
        const counted = sample(text, 'grouparoo_group_transitions_total{group="big",direction="enter"}') === Number(rows[0]?.n);
        return filled && counted && sample(text, 'grouparoo_runs{kind="backfill",state="complete"}') === 1 ? true : undefined;
      });
      expect(Number(rows[0]?.n)).toBeGreaterThan(0);
      await waitFor("ready again", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined));

      // `runs` lists the backfill; `rebuild` asks for another beside the running daemon.
      const listed = await runCli(["runs", "--state", state, "--json"]);
      expect(listed.code).toBe(0);
      const runs = JSON.parse(listed.stdout) as { kind: string; target: string; state: string }[];
      expect(runs.filter((r) => r.kind === "backfill").map((r) => [r.target, r.state])).toEqual([["group big", "complete"]]);
      const table = await runCli(["runs", "--state", state]);
      expect(table.stdout.split("\n")[0]).toMatch(/^ID +KIND +TARGET +STATE +DONE\/TOTAL +% +STARTED +FINISHED +ERROR$/);
      const rebuilt = await runCli(["rebuild", "--config", config, "--state", state, "--property", "lifetime_value"]);
      expect(rebuilt).toEqual({
        code: 0,
        stdout: "requested 1 run: rebuild property lifetime_value; a running daemon starts them within a second, a stopped one when it starts\n",
        stderr: "",
      });
      await waitFor("the requested rebuild done", async () => {
        const again = JSON.parse((await runCli(["runs", "--state", state, "--json"])).stdout) as { kind: string; state: string; processed: number }[];
        const rebuild = again.find((r) => r.kind === "rebuild");
        return rebuild?.state === "complete" ? rebuild : undefined;
      });
      expect(sample(await metrics(), 'grouparoo_run_items_total{kind="rebuild"}')).toBe(13); // every record: the 12 of the data and the one inserted after the refused config

      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      if (daemon && daemon.child.exitCode === null) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
      }
      await db.drop();
    }
  });

  it("survives a SIGHUP sent before its program is loaded, reloads once started, and joins the SIGHUPs of a burst", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "reload_early");
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "early.json");
      writeFileSync(config, JSON.stringify(concrete(shopConfig(), db.url)));
      const http = `127.0.0.1:${await freePort()}`;
      // A loader hook holds the program's first import for 1.5 s and says when: a window in which
      // only the executable's first module has run. SIGHUP's default action would end the process.
      const marker = join(work, "early.marker");
      const hooks = new URL("../fixtures/delay-resolve/register.mjs", import.meta.url).pathname;
      daemon = startDaemon(["--config", config, "--state", join(work, "early-state")], http, {
        ...process.env,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${hooks}`.trim(),
        DELAY_RESOLVE_MARKER: marker,
      });
      await daemon.until("the program's import held", async () => (existsSync(marker) ? true : undefined), 30_000, 5);
      daemon.child.kill("SIGHUP");
      const metrics = async () => (await get(http, "/metrics")).body;
      await daemon.until("ready", async () => ((await get(http, "/readyz").catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 30_000);
      expect(daemon.logs()).toContain("a SIGHUP arrived while the daemon started: reloading the config now");
      // The config it reads again is the one it started with: nothing to apply, nothing restarted.
      const reloads = async (result: string) => sample(await metrics(), `grouparoo_config_reload_total{result="${result}"}`) ?? 0;
      await daemon.until("the start-up reload done", async () => ((await reloads("unchanged")) === 1 ? true : undefined));
      expect(daemon.logs()).toContain("config unchanged: the running config goes on");

      // Another SIGHUP, the config unchanged: /readyz stays 200 throughout (a reload restarts the streams).
      daemon.child.kill("SIGHUP");
      const answers = new Set<number>();
      while ((await reloads("unchanged")) < 2) answers.add((await get(http, "/readyz")).status);
      for (let i = 0; i < 20; i++) answers.add((await get(http, "/readyz")).status);
      expect([...answers]).toEqual([200]);
      expect(await reloads("applied")).toBe(0);

      // A burst: a SIGHUP every 25 ms for a second, the config switched between two versions before
      // each, so every reload has something to apply and restarts the streams. Requests made while a
      // reload waits join it: once the burst ends, at most the reload under way and one queued behind
      // it remain; one reload each would leave dozens.
      const plain = concrete(shopConfig(), db.url);
      const withGroup = [...plain, { class: "group", id: "big", modelId: "users", rules: [{ propertyId: "max_amount", op: "gt", match: 90 }] }];
      // The three results from one scrape (a reload ending between three scrapes would be missed).
      const done = async () => {
        const text = await metrics();
        return ["applied", "unchanged", "invalid"].reduce((n, result) => n + (sample(text, `grouparoo_config_reload_total{result="${result}"}`) ?? 0), 0);
      };
      for (let i = 0; i < 40; i++) {
        // Written whole, then renamed over it: a reload never reads half a file.
        writeFileSync(`${config}.next`, JSON.stringify(i % 2 === 0 ? withGroup : plain));
        renameSync(`${config}.next`, config);
        daemon.child.kill("SIGHUP");
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const atEnd = await done();
      let settled = atEnd;
      await daemon.until("the reloads done", async () => {
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const now = await done();
        const finished = now === settled && (await get(http, "/readyz")).status === 200;
        settled = now;
        return finished ? true : undefined;
      }, 60_000, 0);
      expect(await reloads("applied")).toBeGreaterThan(0);
      expect(settled - atEnd).toBeLessThanOrEqual(2);
      await daemon.until("the records", async () => (sample(await metrics(), 'grouparoo_records{model="users"}') === 12 ? true : undefined));
      daemon.child.kill("SIGTERM");
      expect(await daemon.exited).toEqual({ code: 0, signal: null });
    } finally {
      if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
      }
      await db.drop();
    }
  });

  it("with --watch-config, applies a change made while the daemon started (its live check waiting on a lock)", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "reload_start");
    const holder = new pg.Client({ connectionString: db.url });
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      // A query import whose EXPLAIN (the start's live check) waits while a migration holds its table.
      const refunds: Obj[] = [
        { class: "source", id: "refund_totals", type: "postgres-query-import", appId: "shop", modelId: "users", options: { query: "SELECT user_id, sum(amount)::float8 AS refunded FROM refunds GROUP BY user_id" }, mapping: { user_id: "user_id" } },
        { class: "property", id: "refunded", type: "float", sourceId: "refund_totals", options: { column: "refunded" } },
      ];
      const config = join(work, "config-start.json");
      writeFileSync(config, JSON.stringify([...concrete(shopConfig(), db.url), ...refunds]));
      await holder.connect();
      await holder.query(`BEGIN`);
      await holder.query(`LOCK TABLE refunds IN ACCESS EXCLUSIVE MODE`);
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", join(work, "state-start"), "--watch-config"], http);
      await waitFor("the start's live check waiting on the lock", async () => {
        const { rows } = await db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'EXPLAIN %refunds%'`);
        return rows.length === 1 ? true : undefined;
      });
      // The config changes now (a group added), after the start read it and before any watch began.
      writeFileSync(config, JSON.stringify([...concrete(shopConfig(), db.url), ...refunds, { class: "group", id: "big", modelId: "users", rules: [{ propertyId: "max_amount", op: "gt", match: 90 }] }]));
      await holder.query(`COMMIT`);
      const metrics = async () => (await get(http, "/metrics")).body;
      await waitFor("the change applied once running", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="applied"}') === 1 ? true : undefined), 60_000);
      expect(daemon.logs()).toContain("the config changed while the daemon started (--watch-config)");
      const { rows } = await db.query<{ n: string }>(`SELECT count(DISTINCT user_id) AS n FROM purchases WHERE amount > 90`);
      expect(Number(rows[0]?.n)).toBeGreaterThan(0);
      await waitFor("the new group filled", async () => (sample(await metrics(), 'grouparoo_group_members{group="big"}') === Number(rows[0]?.n) ? true : undefined));
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await holder.end().catch(() => undefined);
      if (daemon && daemon.child.exitCode === null) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
      }
      await db.drop();
    }
  });
});
