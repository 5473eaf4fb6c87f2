// Runs asked for by hand (`grouparoo-stream rebuild`, `POST /api/v1/runs`) across a restart and a
// reload, against real Postgres: no config change plans them again, so the new generation keeps them
// (a running one resumes from its cursor) after the Runs the config change plans, starts one again
// when a definition it depends on changed, and supersedes only the ones whose target left the config,
// saying why; a request `rebuild` left for it is checked against its config. The state ends as a
// fresh daemon's.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Store } from "../../state/store.js";
import { listRuns, type RunState } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { concreteShop, dumpState, SHOP_DATA, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const GROUPS = ["high_value", "vips"];

describe("Runs asked for by hand", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "requested_runs");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "requested-runs-"));
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const logs: { msg: string; run?: string; reason?: string; from?: number }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) });
  const start = async (file: string, objects: Obj[], state: string) => {
    writeFileSync(file, JSON.stringify(objects));
    const daemon = await Daemon.start({ config: file, state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, logger);
    if (typeof daemon === "number") throw new Error(`the daemon did not start (exit ${daemon})`);
    return daemon;
  };
  const settled = (daemon: Daemon, records: number) =>
    waitFor("records read, Runs done, exports delivered", async () => (daemon.state.countOf("records", "users") === records && daemon.runs?.pending().length === 0 && daemon.state.outboxDepth("crm") === 0 ? true : undefined), 60_000);
  const stop = async (daemon: Daemon) => {
    await daemon.drain("SIGTERM");
    await daemon.finished;
  };
  const dump = (store: Store) => dumpState(store, ["users"], ["crm"], GROUPS, ["users_table", "purchases_table"]);
  /** The shop config for a daemon, or for its oracle (its own slot and table). */
  const shop = (oracle = false, change: (objects: Obj[]) => Obj[] = (o) => o) => change(concreteShop(shopConfig(), db.url, oracle ? "requested_oracle" : "requested", oracle ? "crm_oracle" : "crm"));
  const ltvFilterChanged = (objects: Obj[]) => objects.map((o) => (o.id === "lifetime_value" ? { ...o, filters: [{ key: "state", op: "ne", match: "failed" }] } : o));
  /** A daemon's state after it read the shop and stopped, to write into as a stopped daemon leaves it. */
  const stoppedState = async (config: Obj[], file: string, state: string) => {
    const daemon = await start(file, config, state);
    await settled(daemon, 12);
    await stop(daemon);
  };
  /** The state equals a fresh daemon's on the same config and data. */
  const expectAsFresh = async (daemon: Daemon, config: Obj[]) => {
    const oracle = await start(join(work, "oracle.json"), config, join(work, "oracle"));
    try {
      await settled(oracle, 12);
      expect({ ...dump(daemon.state), remote: null }).toEqual({ ...dump(oracle.state), remote: null });
    } finally {
      await stop(oracle);
    }
  };
  const byId = (runs: RunState[], id: string) => runs.find((r) => r.id === id);
  /** A Run asked for by hand as a stopped daemon leaves it in its state (queued unless `progress` says otherwise). */
  const at = Date.UTC(2026, 10, 30);
  const asked = (n: number, spec: RunState["spec"], target: string, progress: Partial<RunState>): RunState => ({
    id: `${at.toString(36)}-req00${n}-${spec.kind}`,
    kind: spec.kind,
    target,
    reason: "asked for by hand (test)",
    spec,
    updates: [],
    state: "queued",
    processed: 0,
    total: null,
    phase: 0,
    createdAt: at,
    ...progress,
  });

  it("keeps them through a restart (the running one resumes from its cursor) and supersedes one whose group left the config", { timeout: 120_000 }, async () => {
    const config = shop();
    const file = join(work, "config.json");
    const state = join(work, "state");
    await stoppedState(config, file, state);

    // What a daemon stopped part-way through three Runs asked for by hand leaves in its state: a
    // backfill past record 6, a destination's exports to plan again, and a backfill of a group this
    // config does not have.
    const running = asked(0, { kind: "backfill", groupId: "vips", modelId: "users" }, "group vips", { state: "running", processed: 6, total: 12, cursor: "6", startedAt: at });
    const exports = asked(1, { kind: "export", destinationId: "crm", modelId: "users", reset: false }, "destination crm", {});
    const gone = asked(2, { kind: "backfill", groupId: "gone", modelId: "users" }, "group gone", {});
    // And two requests `rebuild` left for the daemon, made with another config: one for a group this
    // config has, one for a group it lacks.
    const left = (at: number, groupId: string) => ({ spec: { kind: "backfill", groupId, modelId: "users" }, target: `group ${groupId}`, reason: "asked for by grouparoo-stream rebuild", at });
    const store = Store.open(state);
    await store.transact((tx) => {
      for (const run of [running, exports, gone]) tx.putMeta(`run:${run.id}`, run);
      for (const request of [left(at * 1000, "high_value"), left(at * 1000 + 1, "elsewhere")]) tx.putMeta(`request:${request.at}`, request);
    });
    await store.close();

    logs.length = 0;
    const daemon = await start(file, config, state);
    try {
      await settled(daemon, 12);
      const runs = listRuns(daemon.state);
      expect(runs.filter((r) => r.reason === "asked for by grouparoo-stream rebuild").map((r) => [r.target, r.state])).toEqual([["group high_value", "complete"]]);
      expect(logs.find((l) => l.msg === "a Run asked for by hand is not queued: it does not apply to the running config")).toMatchObject({ reason: "group elsewhere is no longer in the config (of model users)" });
      expect(daemon.state.getMeta("request:" + String(at * 1000 + 1))).toBeUndefined();
      expect(byId(runs, running.id)).toMatchObject({ state: "complete", processed: 12, total: 12 });
      expect(logs.find((l) => l.run === running.id && l.msg === "run resumed")).toMatchObject({ from: 6 });
      expect(byId(runs, exports.id)).toMatchObject({ state: "complete", processed: 12 });
      expect(byId(runs, gone.id)).toMatchObject({ state: "superseded", error: "superseded: group gone is no longer in the config (of model users)" });
      expect(logs.find((l) => l.run === gone.id)).toMatchObject({ msg: "run asked for by hand superseded: it no longer applies to this config", reason: "group gone is no longer in the config (of model users)" });

      await expectAsFresh(daemon, shop(true));
    } finally {
      await stop(daemon);
    }
  });

  it("starts one again from the beginning when the config changed what it depends on, after the planned Runs", { timeout: 120_000 }, async () => {
    const config = shop();
    const file = join(work, "config.json");
    const state = join(work, "state");
    await stoppedState(config, file, state);

    // A rebuild of purchase_count and lifetime_value part-way (records 1 to 6 done), and one of
    // lifetime_value alone queued; then lifetime_value's filter changed while stopped.
    const covered = asked(1, { kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["lifetime_value"] }, "property lifetime_value", {});
    const rebuilding = asked(0, { kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["purchase_count", "lifetime_value"] }, "properties purchase_count, lifetime_value", { state: "running", processed: 6, total: 12, phase: 1, cursor: "6", startedAt: at });
    const store = Store.open(state);
    await store.transact((tx) => {
      for (const run of [rebuilding, covered]) tx.putMeta(`run:${run.id}`, run);
    });
    await store.close();
    const changed = ltvFilterChanged(config);

    logs.length = 0;
    const daemon = await start(file, changed, state);
    try {
      await settled(daemon, 12);
      const runs = listRuns(daemon.state);
      const again = runs.find((r) => r.kind === "rebuild" && r.id !== rebuilding.id && r.id !== covered.id && r.reason === "asked for by hand (test)");
      expect(again).toMatchObject({ state: "complete", processed: 12, total: 12, spec: rebuilding.spec });
      expect(byId(runs, rebuilding.id)).toMatchObject({ state: "superseded", error: `superseded: the config changed property lifetime_value: asked for again as run ${again?.id}` });
      expect(logs.find((l) => l.run === rebuilding.id)).toMatchObject({ msg: "run asked for by hand starts again: what it depends on changed" });
      expect(logs.find((l) => l.run === again?.id && l.msg === "run started")).toBeDefined();
      // The Run the filter change planned went first, and does all the other one asked for.
      const planned = runs.find((r) => r.kind === "rebuild" && !r.id.includes("-req"));
      expect(planned).toMatchObject({ state: "complete", target: "property lifetime_value" });
      expect(byId(runs, covered.id)).toMatchObject({ state: "superseded", error: `superseded: run ${planned?.id} does the same work for the config change` });
      expect((again?.startedAt ?? 0) >= (planned?.finishedAt ?? Infinity)).toBe(true);

      await expectAsFresh(daemon, shop(true, ltvFilterChanged));
    } finally {
      await stop(daemon);
    }
  });

  it("keeps a queued one through a reload that applies a new config, after the Run the change plans", { timeout: 120_000 }, async () => {
    const config = shop();
    const file = join(work, "config.json");
    const daemon = await start(file, config, join(work, "state"));
    try {
      await settled(daemon, 12);
      // Queued while the Runs take nothing (as when a Run is in progress), then a group added by a reload.
      const runs = daemon.runs;
      if (!runs) throw new Error("no Runs");
      runs.stop();
      const queued = await runs.request({ kind: "backfill", groupId: "high_value", modelId: "users" }, "group high_value", "asked for by hand (test)");
      expect(queued.state).toBe("queued");
      const withGroup = [...config, { class: "group", id: "named_1", modelId: "users", rules: [{ propertyId: "name", op: "like", match: "name1%" }] }];
      writeFileSync(file, JSON.stringify(withGroup));
      expect(await daemon.reload("test")).toBe("applied");
      await settled(daemon, 12);
      const after = listRuns(daemon.state);
      const planned = after.find((r) => r.kind === "backfill" && r.target === "group named_1");
      expect(planned).toMatchObject({ state: "complete" });
      expect(byId(after, queued.id)).toMatchObject({ state: "complete", processed: 12, total: 12 });
      expect((byId(after, queued.id)?.startedAt ?? 0) >= (planned?.finishedAt ?? Infinity)).toBe(true);
      // users 1 and 10 to 12 are named name1...
      expect(daemon.state.membersOf("users", "named_1").sort()).toEqual(["1", "10", "11", "12"]);
    } finally {
      await stop(daemon);
    }
  });
  it("re-reading a source removes the rows its table lost while nothing saw them go, as a fresh daemon's snapshot leaves them out", { timeout: 120_000 }, async () => {
    const config = shop();
    const file = join(work, "config.json");
    const daemon = await start(file, config, join(work, "state"));
    try {
      await settled(daemon, 12);
      // Changes the slot never sends (the tables left the publication meanwhile): deletes, an insert, an update.
      await db.query(`ALTER PUBLICATION requested DROP TABLE users, purchases`);
      await db.query(`DELETE FROM users WHERE id IN (11, 12)`);
      await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (13, 'u13@example.com', 'name13', 'last13', true)`);
      await db.query(`UPDATE users SET name = 'renamed' WHERE id = 2`);
      await db.query(`DELETE FROM purchases WHERE user_id IN (1, 2)`);
      await db.query(`ALTER PUBLICATION requested ADD TABLE users, purchases`);
      await db.query(`INSERT INTO purchases VALUES (500, 3, 77, 0, 'successful', 'sku1', '2026-02-01T00:00:00Z')`);
      await waitFor("the streamed purchase", async () => (daemon.state.rowOf("purchases_table", "500") ? true : undefined));
      expect(daemon.state.getRecord("users", "12")).toBeDefined();
      const runs = daemon.runs;
      if (!runs) throw new Error("no Runs");
      for (const sourceId of ["users_table", "purchases_table"]) await runs.request({ kind: "reread", sourceId, modelId: "users" }, `source ${sourceId}`, "asked for by hand (test)");
      // Meanwhile the tables keep changing: what streams in during the re-reads stays.
      await db.query(`INSERT INTO purchases VALUES (501, 4, 12, 0, 'successful', 'sku2', '2026-02-02T00:00:00Z')`);
      await db.query(`INSERT INTO users (id, email, name, last_name, vip) VALUES (14, 'u14@example.com', 'name14', 'last14', false)`);
      await waitFor("the re-reads", async () => (listRuns(daemon.state).filter((r) => r.kind === "reread" && r.state === "complete").length === 2 && daemon.runs?.pending().length === 0 && daemon.state.outboxDepth("crm") === 0 ? true : undefined), 60_000);
      expect(daemon.state.getRecord("users", "12")).toBeUndefined();
      expect(daemon.state.getRecord("users", "13")?.values.name).toBe("name13");
      expect(daemon.state.getRecord("users", "2")?.values.name).toBe("renamed");
      expect(daemon.state.rowOf("purchases_table", "501")).toBeDefined();
      // Before, users 11 and 12 and the purchases of users 1 and 2 stayed, in the state and in the destination.
      const oracle = await start(join(work, "oracle.json"), shop(true), join(work, "oracle"));
      try {
        await settled(oracle, 12);
        expect({ ...dump(daemon.state), remote: null }).toEqual({ ...dump(oracle.state), remote: null });
        const table = async (name: string) => (await db.query(`SELECT * FROM ${name} ORDER BY id`)).rows;
        expect(await table("crm")).toEqual(await table("crm_oracle"));
      } finally {
        await stop(oracle);
      }
    } finally {
      await stop(daemon);
    }
  });
});
