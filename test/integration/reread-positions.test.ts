// A Run's re-read keeps its progress as the position of a stream of its own (run:<id>), where it
// resumes after a restart. Once the Run ended (complete, superseded by a config change, stopped by
// hand) nothing reads that position again, yet it stayed in the state for good: every `rebuild
// --source` or `POST /runs {"source"}` added one more line to the positions `status` prints, and the
// state differed from a fresh daemon's on the same config and data. Now it leaves with the Run, in the
// transaction that ends it, and a start forgets those an earlier version kept.
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
import { concreteShop, SHOP_DATA, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("a re-read's position", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "reread_positions");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "reread-positions-"));
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const file = () => join(work, "config.json");
  const start = async (objects: Obj[], state: string) => {
    writeFileSync(file(), JSON.stringify(objects));
    const daemon = await Daemon.start({ config: file(), state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, pino({ level: "silent" }));
    if (typeof daemon === "number") throw new Error(`the daemon did not start (exit ${daemon})`);
    return daemon;
  };
  const settled = (daemon: Daemon) => waitFor("records read, Runs done", async () => (daemon.state.countOf("records", "users") === 12 && daemon.runs?.pending().length === 0 ? true : undefined), 60_000);
  const stop = async (daemon: Daemon) => {
    await daemon.drain("SIGTERM");
    await daemon.finished;
  };
  const streams = (store: Store) => [...store.allPositions().keys()].sort();

  it("leaves the state with a re-read that completed, and with one a config change superseded", { timeout: 120_000 }, async () => {
    const config = concreteShop(shopConfig(), db.url, "reread_positions", "crm");
    const state = join(work, "state");
    const daemon = await start(config, state);
    let fresh: string[];
    try {
      await settled(daemon);
      fresh = streams(daemon.state);
      expect(fresh.filter((s) => s.startsWith("run:"))).toEqual([]);
      // Both sources read again, as `POST /api/v1/runs {"source": ...}` asks.
      const runs = daemon.runs;
      if (!runs) throw new Error("no Runs");
      const asked = [await runs.request({ kind: "reread", sourceId: "users_table", modelId: "users" }, "source users_table", "asked for by hand (test)"), await runs.request({ kind: "reread", sourceId: "purchases_table", modelId: "users" }, "source purchases_table", "asked for by hand (test)")];
      await waitFor("both re-reads complete", async () => (asked.every((a) => listRuns(daemon.state).find((r) => r.id === a.id)?.state === "complete") ? true : undefined), 60_000);
      expect(listRuns(daemon.state).filter((r) => asked.some((a) => a.id === r.id)).map((r) => [r.target, r.state, r.processed])).toEqual([
        ["source users_table", "complete", 12],
        ["source purchases_table", "complete", 40],
      ]);
      expect(streams(daemon.state)).toEqual(fresh);
    } finally {
      await stop(daemon);
    }

    // What a daemon killed part-way through a re-read of purchases leaves: the Run running, its position.
    const at = Date.UTC(2026, 10, 30);
    const cut: RunState = { id: `${at.toString(36)}-req000-reread`, kind: "reread", target: "source purchases_table", reason: "asked for by hand (test)", spec: { kind: "reread", sourceId: "purchases_table", modelId: "users" }, updates: [], state: "running", processed: 10, total: null, phase: 0, cursor: JSON.stringify({ rows: 10 }), createdAt: at, startedAt: at };
    const store = Store.open(state);
    // And what an earlier version left of a re-read that completed: its position.
    const ended: RunState = { ...cut, id: `${(at - 1).toString(36)}-req000-reread`, target: "source users_table", spec: { kind: "reread", sourceId: "users_table", modelId: "users" }, state: "complete", processed: 12, createdAt: at - 1, finishedAt: at };
    await store.transact((tx) => {
      tx.putMeta(`run:${cut.id}`, cut);
      tx.setPosition(`run:${cut.id}`, JSON.stringify({ rows: 10 }));
      tx.putMeta(`run:${ended.id}`, ended);
      tx.setPosition(`run:${ended.id}`, JSON.stringify({ rows: 12, complete: true }));
    });
    await store.close();
    // Started on a config without purchases: the Run no longer applies, and goes with its position.
    const withoutPurchases = config.filter((o) => o.id !== "purchases_table" && o.sourceId !== "purchases_table" && !(o.class === "group" && o.id === "high_value"));
    const again = await start(
      withoutPurchases.map((o) => (o.class === "destination" ? { ...o, destinationGroupMemberships: { VIP: "vips" }, mapping: Object.fromEntries(Object.entries(o.mapping as Record<string, string>).filter(([, p]) => withoutPurchases.some((q) => q.class === "property" && q.id === p))) } : o)),
      state,
    );
    try {
      await settled(again);
      expect(listRuns(again.state).find((r) => r.id === cut.id)).toMatchObject({ state: "superseded" });
      expect(listRuns(again.state).find((r) => r.id === ended.id)).toMatchObject({ state: "complete" });
      expect(streams(again.state).filter((s) => s.startsWith("run:"))).toEqual([]);
    } finally {
      await stop(again);
    }
  });
});
