// The dead-letter routes' component filter against the daemon as a process: a component that is
// neither a source nor a destination of the config, and has no dead letters, is 404 UNKNOWN_COMPONENT
// on GET /dead-letters and POST /dead-letters/replay (it was 200 with nothing); the dead letters of a
// component the config no longer has stay listed and replayable by its name.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { get, killIfRunning, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("dead letters by component", () => {
  const work = mkdtempSync(join(tmpdir(), "dead-letters-api-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("answers an unknown component 404 UNKNOWN_COMPONENT, and keeps a removed component's letters reachable", { timeout: 60_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "dead_letters_api");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      const config = join(work, "config.yml");
      writeFileSync(
        config,
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: dead_letters_api, publication: dead_letters_api } }
- { class: app, id: files, type: file, options: { directory: "${work}/out" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: destination, id: file_out, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: users.jsonl }, mapping: { id: user_id } }
`,
      );
      // A dead letter of a source an earlier config had.
      const state = join(work, "state");
      const seed = Store.open(state);
      await seed.transact((tx) => {
        tx.deadLetter({ kind: "message", sourceId: "old_table", reason: "could not be decoded: test", change: { sourceId: "old_table", op: "marker", key: "", before: null, after: null, position: { stream: "postgres:old", position: "0/2" }, commitTime: Date.now(), deadLetter: { reason: "test", payload: { lsn: "0/2" } } } });
      });
      await seed.close();
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", state, "--api-insecure"], http);
      const running = daemon;
      await running.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`http://${http}/api/v1${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }) });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const unknown = { error: { code: "UNKNOWN_COMPONENT", message: 'no source or destination "nope" in the config, and no dead letter of one' } };
      expect(await call("GET", "/dead-letters?component=nope")).toEqual({ status: 404, body: unknown });
      expect(await call("POST", "/dead-letters/replay", { all: true, component: "nope" })).toEqual({ status: 404, body: unknown });
      // Components of the config, with or without letters.
      expect(await call("GET", "/dead-letters?component=users_table")).toEqual({ status: 200, body: { deadLetters: [], nextCursor: null } });
      expect(await call("GET", "/dead-letters?component=file_out&kind=export")).toEqual({ status: 200, body: { deadLetters: [], nextCursor: null } });
      expect(await call("POST", "/dead-letters/replay", { all: true, component: "file_out" })).toEqual({ status: 200, body: { changes: 0, failedAgain: 0, exports: {}, skipped: [] } });
      // A removed component's letters: listed, and named in a replay (a message is skipped, as always).
      const listed = await call("GET", "/dead-letters?component=old_table");
      expect(listed.status).toBe(200);
      expect(listed.body).toMatchObject({ deadLetters: [{ seq: 1, kind: "message", component: "old_table" }], nextCursor: null });
      const replayed = await call("POST", "/dead-letters/replay", { all: true, component: "old_table" });
      expect(replayed.status).toBe(200);
      expect(replayed.body).toMatchObject({ changes: 0, exports: {}, skipped: [{ seq: 1 }] });

      running.child.kill("SIGTERM");
      expect((await running.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });

  it("replays every replayable letter of a kind or component however many others come before them", { timeout: 90_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "dead_letters_replay");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      const config = join(work, "replay.yml");
      writeFileSync(
        config,
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: dead_letters_replay, publication: dead_letters_replay } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
`,
      );
      // 25,000 messages a source could not decode (never replayable: they stay), then two changes and,
      // later, one more, that can be applied again (rows the core set aside).
      const state = join(work, "state-replay");
      const seed = Store.open(state);
      const message = (n: number) => ({ kind: "message" as const, sourceId: "events", reason: "could not be decoded: test", change: { sourceId: "events", op: "marker" as const, key: "", before: null, after: null, position: { stream: "kafka:k:events:0", position: String(n) }, commitTime: Date.now(), deadLetter: { reason: "test", payload: "{" } } });
      const row = (id: number) => ({ kind: "change" as const, sourceId: "users_table", reason: "set aside: test", change: { sourceId: "users_table", op: "insert" as const, key: String(id), before: null, after: { id }, position: { stream: "postgres:shop", position: "0/1" }, commitTime: Date.now() } });
      for (let chunk = 0; chunk < 5; chunk++) await seed.transact((tx) => Array.from({ length: 5000 }, (_, i) => tx.deadLetter(message(chunk * 5000 + i))));
      await seed.transact((tx) => [row(7), row(8)].forEach((l) => tx.deadLetter(l)));
      await seed.transact((tx) => Array.from({ length: 20_000 }, (_, i) => tx.deadLetter(message(25_000 + i))));
      await seed.transact((tx) => tx.deadLetter(row(9)));
      await seed.close();
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", state, "--api-insecure"], http);
      const running = daemon;
      await running.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`http://${http}/api/v1${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }) });
        return { status: response.status, body: (await response.json()) as { changes?: number; skipped?: { seq: number }[] } };
      };
      // By component: the three rows, and no message of another source.
      const byComponent = await call("POST", "/dead-letters/replay", { all: true, component: "users_table" });
      expect(byComponent).toEqual({ status: 200, body: { changes: 3, failedAgain: 0, exports: {}, skipped: [] } });
      for (const id of [7, 8, 9]) expect((await call("GET", `/records/users?user_id=${id}`)).status).toBe(200);
      // None left (a page reads at most 20,000 letters: followed to the end).
      const left: unknown[] = [];
      for (let cursor: string | null = ""; cursor !== null; ) {
        const page = (await call("GET", `/dead-letters?component=users_table&cursor=${cursor}`)).body as unknown as { deadLetters: unknown[]; nextCursor: string | null };
        left.push(...page.deadLetters);
        cursor = page.nextCursor;
      }
      expect(left).toEqual([]);
      running.child.kill("SIGTERM");
      expect((await running.exited).code).toBe(0);

      // By kind, on the same letters again: the changes behind the messages are replayed; the first
      // 10,000 messages are listed as skipped.
      const again = Store.open(state);
      await again.transact((tx) => [row(10), row(11)].forEach((l) => tx.deadLetter(l)));
      await again.close();
      daemon = startDaemon(["--config", config, "--state", state, "--api-insecure"], http);
      const second = daemon;
      await second.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      const byKind = await call("POST", "/dead-letters/replay", { all: true, kind: "change" });
      expect(byKind.status).toBe(200);
      expect(byKind.body.changes).toBe(2);
      expect(byKind.body.skipped).toHaveLength(10_000);
      expect(byKind.body.skipped?.[0]?.seq).toBe(1);
      for (const id of [10, 11]) expect((await call("GET", `/records/users?user_id=${id}`)).status).toBe(200);
      second.child.kill("SIGTERM");
      expect((await second.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
