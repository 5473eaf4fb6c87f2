// A request `grouparoo-stream rebuild` leaves in the state (meta entry request:<at>) is taken by the
// running daemon within a second. It must leave the state only in the transaction that stores its
// Run: the daemon took it in two (the request removed, then the Run stored), and a SIGKILL between
// them lost what the operator asked for, although `rebuild` had said "requested". Here the daemon
// "dies" at that instant (the Run is never stored), and a restart still runs it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { listRuns, Runs } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { concreteShop, SHOP_DATA, SHOP_SCHEMA, shopConfig } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("a Run asked for by rebuild", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "requested_crash");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    work = mkdtempSync(join(tmpdir(), "requested-crash-"));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is not lost when the daemon dies between taking the request and storing its Run", { timeout: 120_000 }, async () => {
    const file = join(work, "config.json");
    const state = join(work, "state");
    writeFileSync(file, JSON.stringify(concreteShop(shopConfig(), db.url, "requested_crash", "crm")));
    const logger = pino({ level: "silent" });
    const start = async () => {
      const daemon = await Daemon.start({ config: file, state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, logger);
      if (typeof daemon === "number") throw new Error(`the daemon did not start (exit ${daemon})`);
      return daemon;
    };
    const settled = (daemon: Daemon) =>
      waitFor("records read, Runs done", async () => (daemon.state.countOf("records", "users") === 12 && daemon.runs?.pending().length === 0 ? true : undefined), 60_000);
    const stop = async (daemon: Daemon) => {
      await daemon.drain("SIGTERM");
      await daemon.finished;
    };

    const first = await start();
    await settled(first);
    // From here the daemon's thread never gets to store a Run asked for by hand: as if it were killed
    // at the instant it took a request.
    let taken = 0;
    vi.spyOn(Runs.prototype, "request").mockImplementation(() => {
      taken += 1;
      return new Promise<never>(() => undefined);
    });
    // What `grouparoo-stream rebuild --group vips` writes beside the running daemon.
    const at = Date.now() * 1000;
    await first.state.transact((tx) => tx.putMeta(`request:${at}`, { spec: { kind: "backfill", groupId: "vips", modelId: "users" }, target: "group vips", reason: "asked for by grouparoo-stream rebuild", at }));
    await waitFor("the request taken", async () => (taken === 1 ? true : undefined), 10_000);
    // No Run stored: the request is still there for the next start.
    expect(listRuns(first.state).filter((r) => r.target === "group vips")).toEqual([]);
    expect(first.state.getMeta(`request:${at}`)).toMatchObject({ target: "group vips" });
    await stop(first);
    vi.restoreAllMocks();

    const second = await start();
    try {
      await settled(second);
      expect(listRuns(second.state).filter((r) => r.target === "group vips").map((r) => [r.kind, r.state, r.reason])).toEqual([["backfill", "complete", "asked for by grouparoo-stream rebuild"]]);
      expect(second.state.getMeta(`request:${at}`)).toBeUndefined();
    } finally {
      await stop(second);
    }
  });
});
