// The API on its own thread (daemon/api/thread.ts): a daemon in this process on real Postgres, whose
// event loop is then blocked on purpose for 11.5 s. Record lookups sent meanwhile by another process
// are answered during the block (reads never wait for the daemon's thread); /status, which needs the
// daemon's thread, gets a 503 after waiting 10 s for it; /healthz fails once the daemon's thread has
// not run for 10 s; both answer 200 again after the block. Writes (a Run asked for) still run on
// the daemon's thread, and a record the stream changed is seen by the next lookup.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { freePort } from "../services/process.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const json = async (http: string, path: string, init?: RequestInit) => {
  const response = await fetch(`http://${http}${path}`, init);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

/** A process that asks `url` every 20 ms for `ms` and prints each answer's time, status and body. */
function poller(url: string, ms: number) {
  const script = `
    const end = Date.now() + ${ms};
    (async () => {
      while (Date.now() < end) {
        const sent = Date.now();
        try {
          const response = await fetch(${JSON.stringify(url)});
          const body = await response.text();
          console.log(JSON.stringify({ sent, at: Date.now(), status: response.status, body }));
        } catch (error) {
          console.log(JSON.stringify({ sent, at: Date.now(), error: String(error) }));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const answers = () =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { sent: number; at: number; status?: number; body?: string; error?: string });
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { answers, done, child };
}

describe("the API thread", () => {
  const work = mkdtempSync(join(tmpdir(), "api-thread-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("answers lookups while the daemon's thread is blocked; /status and /healthz say it is stuck", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "api_thread");
    let daemon: Daemon | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, score int NOT NULL)`);
      await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com', g FROM generate_series(1, 1000) g`);
      const config = join(work, "config.json");
      writeFileSync(
        config,
        JSON.stringify([
          { class: "app", id: "shop", type: "postgres", options: { connectionString: db.url, slot: "api_thread", publication: "api_thread" } },
          { class: "model", id: "users" },
          { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
          { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
          { class: "property", id: "email", type: "email", unique: true, sourceId: "users_table", options: { column: "email" } },
          { class: "property", id: "score", type: "integer", sourceId: "users_table", options: { column: "score" } },
          { class: "group", id: "high", modelId: "users", rules: [{ propertyId: "score", op: "gte", match: 900 }] },
        ]),
      );
      const http = `127.0.0.1:${await freePort()}`;
      const started = await Daemon.start({ config, state: join(work, "state"), http, apiInsecure: true }, pino({ level: process.env.TEST_LOG ?? "silent" }));
      if (typeof started === "number") throw new Error(`the daemon did not start (${started})`);
      daemon = started;
      await waitFor("the snapshot", async () => (started.state.countOf("records", "users") === 1000 ? true : undefined), 60_000);

      const lookup = await json(http, "/api/v1/records/users?email=u42@example.com");
      expect(lookup.status).toBe(200);
      expect((lookup.body.record as { properties: Record<string, { value: unknown }> }).properties.score?.value).toBe(42);

      // Other processes ask for a record, /status and /healthz every 20 ms for 16 s; this thread blocks
      // for 11.5 s once all three have answered at least once.
      const records = poller(`http://${http}/api/v1/records/users?user_id=7`, 16_000);
      const status = poller(`http://${http}/api/v1/status`, 16_000);
      const health = poller(`http://${http}/healthz`, 16_000);
      await waitFor("the pollers answered", async () => (records.answers().length > 0 && status.answers().length > 0 && health.answers().length > 0 ? true : undefined));
      const blockedFrom = Date.now();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 11_500);
      const blockedUntil = Date.now();
      await Promise.all([records.done, status.done, health.done]);

      // Answers to requests sent during the block and received before it ended.
      type Answer = ReturnType<typeof records.answers>[number];
      const during = (answers: Answer[]) => answers.filter((a) => a.sent >= blockedFrom + 50 && a.at <= blockedUntil - 50);
      // Lookups: many, every one the record.
      const lookups = during(records.answers());
      expect(lookups.length).toBeGreaterThan(50);
      for (const a of lookups) {
        expect(a.status).toBe(200);
        expect((JSON.parse(a.body ?? "{}") as { record: { properties: { email: { value: string } } } }).record.properties.email.value).toBe("u7@example.com");
      }
      // /status needs the daemon's thread: what arrived during the block is a 503 after 10 s of waiting
      // for it (the poller asks one at a time, so that is the request in flight when the block began).
      // (An answer sent before the block that its poller, another process, took in late is left out: it
      // came at once, not after waiting.)
      const statuses = status.answers().filter((a) => a.at >= blockedFrom + 50 && a.at <= blockedUntil - 50 && a.at - a.sent > 1_000);
      expect(statuses.length).toBeGreaterThan(0);
      for (const a of statuses) {
        expect(a.status).toBe(503);
        expect(a.at - a.sent).toBeGreaterThanOrEqual(10_000);
        expect(a.body).toContain("did not answer within 10 s");
      }
      // /healthz: alive for the first 8 s of the block (the last beat came at most a second before it),
      // 503 after 10.5 s (the daemon's thread stopped running).
      const probes = during(health.answers());
      expect(probes.filter((a) => a.at < blockedFrom + 8_000 && !(a.status === 200 && a.body === "ok\n"))).toEqual([]);
      const late = probes.filter((a) => a.sent > blockedFrom + 10_500);
      expect(late.length).toBeGreaterThan(0);
      for (const a of late) {
        expect(a.status).toBe(503);
        expect(a.body).toMatch(/^not alive: the daemon's thread has not run for 1\d s \(its event loop is blocked\)\n$/);
      }
      // ... and both answered 200 again once the daemon's thread was free.
      expect(status.answers().filter((a) => a.sent > blockedUntil + 100 && a.status === 200).length).toBeGreaterThan(0);
      expect(health.answers().filter((a) => a.sent > blockedUntil + 1500 && a.status === 200).length).toBeGreaterThan(0);

      // The stream's writes are seen by the thread's next read.
      await db.query(`UPDATE users SET score = 4242 WHERE id = 7`);
      await waitFor("the update looked up", async () => {
        const answer = await json(http, "/api/v1/records/users?user_id=7");
        const record = answer.body.record as { properties: Record<string, { value: unknown }>; groups: string[] };
        return record.properties.score?.value === 4242 && record.groups.includes("high") ? true : undefined;
      });

      // A write goes through the thread to the daemon's pipeline: a backfill Run of the group.
      const asked = await json(http, "/api/v1/runs", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ group: "high" }) });
      expect(asked.status).toBe(202);
      const run = (asked.body.runs as { id: string; kind: string }[])[0];
      expect(run?.kind).toBe("backfill");
      await waitFor("the Run complete", async () => ((await json(http, `/api/v1/runs/${run?.id ?? ""}`)).body.run as { state: string }).state === "complete" ? true : undefined, 30_000);
      expect(started.state.countOf("members", "high")).toBe(102);
    } finally {
      if (daemon) {
        await daemon.drain("SIGTERM");
        await daemon.finished;
      }
      await db.drop();
    }
  });
});
