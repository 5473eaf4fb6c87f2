// A write route while the daemon's thread is blocked (daemon/api/reader.ts forward): the API thread
// hands every write to the daemon's thread, and gave it no time limit, so a POST sent to a wedged
// daemon hung for as long as the daemon's thread did (for ever, until a supervisor killed it), although
// the README promises a 503 once that thread has not answered within 10 s. Now a write that thread has
// not taken within 10 s is answered 503 and is never done, even once the thread runs again; one sent
// afterwards is done as before. A daemon in this process on real Postgres; its event loop is blocked
// on purpose for 11.5 s while another process sends the write.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { listRuns } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** A process that sends one POST after `delayMs` and prints when it sent it, when the answer came, its status and body. */
function postLater(url: string, body: unknown, delayMs: number) {
  const script = `
    setTimeout(async () => {
      const sent = Date.now();
      try {
        const response = await fetch(${JSON.stringify(url)}, { method: "POST", headers: { "content-type": "application/json" }, body: ${JSON.stringify(JSON.stringify(body))} });
        console.log(JSON.stringify({ sent, at: Date.now(), status: response.status, body: await response.text() }));
      } catch (error) {
        console.log(JSON.stringify({ sent, at: Date.now(), error: String(error) }));
      }
    }, ${delayMs});`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return new Promise<{ sent: number; at: number; status?: number; body?: string; error?: string }>((resolve) => child.once("exit", () => resolve(JSON.parse(out.trim() || "{}"))));
}

describe("a write to a daemon whose thread is blocked", () => {
  const work = mkdtempSync(join(tmpdir(), "api-thread-writes-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("is answered 503 after 10 s and never done; a write sent afterwards is done", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "api_thread_writes");
    let daemon: Daemon | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, score int NOT NULL)`);
      await db.query(`INSERT INTO users SELECT g, g FROM generate_series(1, 100) g`);
      const config = join(work, "config.json");
      writeFileSync(
        config,
        JSON.stringify([
          { class: "app", id: "shop", type: "postgres", options: { connectionString: db.url, slot: "api_thread_writes", publication: "api_thread_writes" } },
          { class: "model", id: "users" },
          { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
          { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
          { class: "property", id: "score", type: "integer", sourceId: "users_table", options: { column: "score" } },
          { class: "group", id: "high", modelId: "users", rules: [{ propertyId: "score", op: "gte", match: 90 }] },
        ]),
      );
      const http = `127.0.0.1:${await freePort()}`;
      const started = await Daemon.start({ config, state: join(work, "state"), http, apiInsecure: true }, pino({ level: process.env.TEST_LOG ?? "silent" }));
      if (typeof started === "number") throw new Error(`the daemon did not start (exit ${started})`);
      daemon = started;
      await waitFor("the snapshot", async () => (started.state.countOf("records", "users") === 100 ? true : undefined), 60_000);
      const backfills = () => listRuns(started.state).filter((r) => r.target === "group high");

      // Another process asks for a Run 0.5 s into an 11.5 s block of this thread (the daemon's).
      const answer = postLater(`http://${http}/api/v1/runs`, { group: "high" }, 500);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const blockedFrom = Date.now();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 11_500);
      const blockedUntil = Date.now();
      const refused = await answer;
      // Answered while this thread was still blocked, 10 s after it was sent: 503, nothing done.
      expect(refused.sent).toBeGreaterThan(blockedFrom);
      expect(refused.status).toBe(503);
      expect(refused.at - refused.sent).toBeGreaterThanOrEqual(10_000);
      expect(refused.at).toBeLessThan(blockedUntil);
      expect(JSON.parse(refused.body ?? "{}")).toEqual({
        error: {
          code: "UNAVAILABLE",
          message: "the daemon's thread did not take the request within 10 s (its event loop is blocked or overloaded; see its log and grouparoo_nodejs_eventloop_lag_seconds); nothing was done: send it again",
        },
      });
      // The daemon's thread runs again and gets the write it was handed: it does not do it.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(backfills()).toEqual([]);

      // Sent again, it is done.
      const again = await fetch(`http://${http}/api/v1/runs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ group: "high" }) });
      expect(again.status).toBe(202);
      await waitFor("the Run complete", async () => (backfills()[0]?.state === "complete" ? true : undefined), 30_000);
      expect(backfills().map((r) => [r.kind, r.state, r.reason])).toEqual([["backfill", "complete", "asked for through the API (key none: --api-insecure)"]]);
    } finally {
      if (daemon) {
        await daemon.drain("SIGTERM");
        await daemon.finished;
      }
      await db.drop();
    }
  });
});
