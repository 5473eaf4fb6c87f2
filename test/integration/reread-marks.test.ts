// A postgres-cdc re-read marks every row it reads and every row that streams in meanwhile, and its
// sweep at the end removes the source's rows without the mark. A re-read stopped part-way (a restart)
// that waits, queued, behind another Run at the next start must still have the changes streamed
// meanwhile marked: a row it had read that changes before it resumes would otherwise lose its mark,
// and the sweep would remove a row the table has.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Store } from "../../state/store.js";
import { listRuns, rereadsUnderWay } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { concreteShop, SHOP_DATA, SHOP_SCHEMA, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const USERS = 30_012;

describe("a re-read part-way across a restart", () => {
  let db: TestDatabase;
  let work: string;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "reread_marks");
    for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
    await db.query(`INSERT INTO users (id, email, name) SELECT g, 'g' || g || '@example.com', 'n' || g FROM generate_series(100, 30099) g`);
    work = mkdtempSync(join(tmpdir(), "reread-marks-"));
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });
  const start = async (objects: Obj[], state: string) => {
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(objects));
    const daemon = await Daemon.start({ config: file, state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, pino({ level: "silent" }));
    if (typeof daemon === "number") throw new Error(`exit ${daemon}`);
    return daemon;
  };
  const stop = async (daemon: Daemon) => {
    await daemon.drain("SIGTERM");
    await daemon.finished;
  };

  it("keeps the rows it read that change while it waits, queued, behind another Run", { timeout: 240_000 }, async () => {
    const config = concreteShop(shopConfig(), db.url, "rereadmarks", "crm");
    const state = join(work, "state");
    let daemon = await start(config, state);
    await waitFor("the snapshot", async () => (daemon.state.countOf("records", "users") === USERS && daemon.runs?.pending().length === 0 ? true : undefined), 120_000);
    const runs = daemon.runs;
    if (!runs) throw new Error("no Runs");
    const users = await runs.request({ kind: "reread", sourceId: "users_table", modelId: "users" }, "source users_table", "asked for by hand (test)");
    await waitFor(
      "its first chunks",
      async () => {
        const progress = daemon.state.position(`run:${users.id}`);
        return progress !== undefined && (JSON.parse(progress) as { rows: number }).rows >= 2000 ? true : undefined;
      },
      60_000,
      5,
    );
    // Its progress is stored as it goes, for `runs`, the API and the progress gauge (it read 0 until the end).
    await waitFor("its stored progress", async () => ((listRuns(daemon.state).find((r) => r.id === users.id)?.processed ?? 0) > 0 ? true : undefined), 10_000);
    await stop(daemon);
    // As a start leaves a kept Run asked for by hand: queued, behind another Run (here a re-read of purchases).
    const store = Store.open(state);
    const run = listRuns(store).find((r) => r.id === users.id);
    if (!run) throw new Error("no run");
    await store.putMeta(`run:${run.id}`, { ...run, state: "queued" });
    const ahead = `${run.id.replace("-req", "-req0")}x`;
    await store.putMeta(`run:${ahead}`, { ...run, id: ahead, spec: { kind: "reread", sourceId: "purchases_table", modelId: "users" }, target: "source purchases_table", state: "queued", processed: 0, createdAt: run.createdAt - 1 });
    expect(rereadsUnderWay(store)).toEqual([{ runId: run.id, sourceIds: ["users_table"] }]);
    await store.close();
    // Rows the re-read read before the stop, changed while it waits: streamed before it resumes.
    await db.query(`UPDATE users SET name = 'changed' WHERE id IN (1, 2, 3)`);
    daemon = await start(config, state);
    try {
      await waitFor("the re-reads", async () => (listRuns(daemon.state).filter((r) => r.kind === "reread" && r.state === "complete").length === 2 && daemon.runs?.pending().length === 0 ? true : undefined), 180_000);
      // Before, users 1 to 3 were swept away.
      expect([1, 2, 3].map((id) => daemon.state.getRecord("users", String(id))?.values.name)).toEqual(["changed", "changed", "changed"]);
      expect(daemon.state.countOf("records", "users")).toBe(USERS);
    } finally {
      await stop(daemon);
    }
  });
});
