// Issue #16, the REST API against a running daemon on real Postgres: every route, every auth outcome
// (no key, wrong key, read-only key on a write route, per-topic permission), record lookup by each
// unique property, paging stable while records change, bad input on every route (a 4xx naming what is
// wrong, and nothing changes), the writes (Runs started and stopped, exports retried, dead letters
// replayed and dropped) done by the daemon itself, `status --url`, and no key's secret in any log
// line or answer. The API off without keys, --api-insecure and --metrics-auth run their own daemons.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../state/store.js";
import { ApiClient } from "../helpers/api.js";
import { runCli } from "../helpers/cli.js";
import { startDaemon, waitFor, type DaemonProcess, logLines } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

type Json = Record<string, unknown>;
const lines = logLines;

const KEYS = {
  OPS_KEY: "ops-4b1d9c0e7f2a48d6b35e91c0aa7d3f25",
  READER_KEY: "reader-7e3f0a9b1c5d4e2f8a6b0c3d9e1f2a4b",
  RECORDS_KEY: "records-0f9e8d7c6b5a49382716a5b4c3d2e1f0",
  SCRAPER_KEY: "scraper-5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d",
};
const WRONG_KEY = "wrong-0000000000000000000000000000000";
const USERS = 20_000;

describe("the REST API", () => {
  let db: TestDatabase;
  let work: string;
  let daemon: DaemonProcess;
  let api: ApiClient;
  let state: string;
  const daemons: DaemonProcess[] = [];
  const env = { ...process.env, ...KEYS };
  const start = (args: string[], http: string, environment: NodeJS.ProcessEnv = env) => {
    const started = startDaemon(args, http, environment);
    daemons.push(started);
    return started;
  };

  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "api");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text, name text, vip boolean, score int)`);
    // 20,000 users: user i is a vip when i % 10 = 0 and scores i % 100; user 7 has a name the contacts table refuses.
    await db.query(
      `INSERT INTO users SELECT i, 'user' || i || '@example.com', CASE WHEN i = 7 THEN 'a-name-far-too-long' ELSE 'user' || i END, i % 10 = 0, i % 100 FROM generate_series(1, ${USERS}) i`,
    );
    await db.query(`CREATE TABLE contacts (id int PRIMARY KEY, email text, name text CHECK (length(name) <= 12))`);
    work = mkdtempSync(join(tmpdir(), "api-"));
    const config = join(work, "config.yml");
    writeFileSync(
      config,
      `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: api_slot, publication: api_pub } }
- { class: app, id: files, type: file, options: { directory: "${work}/out" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, unique: true, sourceId: users_table, options: { column: email } }
- { class: property, id: name, type: string, sourceId: users_table, options: { column: name } }
- { class: property, id: vip, type: boolean, sourceId: users_table, options: { column: vip } }
- { class: property, id: score, type: integer, sourceId: users_table, options: { column: score } }
- { class: group, id: vips, modelId: users, rules: [{ propertyId: vip, op: eq, match: "true" }] }
- { class: group, id: high, modelId: users, rules: [{ propertyId: score, op: gte, match: 90 }] }
- { class: destination, id: contacts, type: postgres-table, appId: shop, modelId: users, collection: group, groupId: vips, syncMode: sync, options: { table: contacts, primaryKey: id }, mapping: { id: user_id, email: email, name: name } }
- { class: destination, id: file_out, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: users.jsonl }, mapping: { id: user_id, email: email } }
- { class: apiKey, id: ops, name: Operations, type: full, apiKey: "\${OPS_KEY}" }
- { class: apiKey, id: reader, type: specific, apiKey: "\${READER_KEY}", permissionAllRead: true }
- { class: apiKey, id: records_only, type: specific, apiKey: "\${RECORDS_KEY}", permissions: [{ topic: record, read: true, write: false }, { topic: deadLetter, read: false, write: true }] }
- { class: apiKey, id: scraper, type: specific, apiKey: "\${SCRAPER_KEY}", permissions: [{ topic: metrics, read: true, write: false }] }
`,
    );
    // Dead letters of sources, put in the state before the daemon starts: a change the core set aside
    // (it can be replayed once the cause is gone: here the change itself is fine) and a message its
    // source could not decode (it cannot be replayed).
    state = join(work, "state");
    const seed = Store.open(state);
    await seed.transact((tx) => {
      tx.deadLetter({ kind: "change", sourceId: "users_table", reason: "set aside by the test", change: { sourceId: "users_table", op: "insert", key: "50000", before: null, after: { id: 50000, email: "late@example.com", name: "late", vip: true, score: 99 }, position: { stream: "postgres:shop", position: "0/1" }, commitTime: Date.now() } });
      tx.deadLetter({ kind: "message", sourceId: "users_table", reason: "pgoutput message at 0/2 could not be decoded: test", change: { sourceId: "users_table", op: "marker", key: "", before: null, after: null, position: { stream: "postgres:shop", position: "0/2" }, commitTime: Date.now(), deadLetter: { reason: "test", payload: { lsn: "0/2" } } } });
    });
    await seed.close();
    const http = `127.0.0.1:${await freePort()}`;
    daemon = start(["--config", config, "--state", state, "--max-attempts", "1"], http, { ...env, LOG_LEVEL: "debug" });
    api = new ApiClient(http);
    await waitFor("the snapshot", async () => ((await api.get<Json>("/api/v1/status", KEYS.OPS_KEY)).body.records as { count: number }[] | undefined)?.[0]?.count === USERS ? true : undefined, 60_000);
    await waitFor("the file destination", async () => {
      const body = (await api.get<{ destinations: { id: string; outboxDepth: number }[] }>("/api/v1/status", KEYS.OPS_KEY)).body;
      return body.destinations.every((d) => d.outboxDepth === 0) ? true : undefined;
    }, 60_000);
  }, 120_000);

  afterAll(async () => {
    for (const d of daemons) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill("SIGKILL");
        await d.exited;
      }
    }
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("says at start that the API is on, with which keys, and never their secrets", () => {
    const on = lines(daemon).find((l) => String(l.msg).startsWith("API on at"));
    expect(on).toMatchObject({ level: 30, keys: ["ops", "reader", "records_only", "scraper"], metricsAuth: false });
    expect(on?.msg).toBe(`API on at http://${api.http}/api/v1 and status page at http://${api.http}/: 4 API keys`);
  });

  it("answers 401 without a key or with an unknown one, 403 without the permission", async () => {
    const none = await api.get("/api/v1/status");
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: { code: "UNAUTHORIZED", message: "no API key: send Authorization: Bearer <key>" } });
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="grouparoo-stream"');
    const wrong = await api.get("/api/v1/status", WRONG_KEY);
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: { code: "UNAUTHORIZED", message: "the API key is not one of this daemon's keys" } });
    expect((await api.call("GET", "/api/v1/status", { key: "" })).status).toBe(401);
    // A header with a scheme the daemon does not take is told apart from no header at all.
    const scheme = await api.call("GET", "/api/v1/status", { authorization: `Token ${KEYS.OPS_KEY}` });
    expect(scheme.status).toBe(401);
    expect(scheme.body).toEqual({ error: { code: "UNAUTHORIZED", message: "the Authorization header holds no API key: send Authorization: Bearer <key>" } });
    // A read-only key: reads everything, writes nothing; the body is never looked at.
    expect((await api.get("/api/v1/runs", KEYS.READER_KEY)).status).toBe(200);
    const readOnly = await api.call("POST", "/api/v1/runs", { key: KEYS.READER_KEY, body: { group: "vips" } });
    expect(readOnly.status).toBe(403);
    expect(readOnly.body).toEqual({ error: { code: "FORBIDDEN", message: 'API key "reader" may not write run' } });
    expect((await api.call("POST", "/api/v1/runs", { key: KEYS.READER_KEY, body: "{not json" })).status).toBe(403);
    // Per topic: records_only reads records, nothing else; writes dead letters, does not read them.
    expect((await api.get("/api/v1/records/users?user_id=1", KEYS.RECORDS_KEY)).status).toBe(200);
    expect((await api.get("/api/v1/records/users?user_id=1", KEYS.SCRAPER_KEY)).body).toEqual({ error: { code: "FORBIDDEN", message: 'API key "scraper" may not read record' } });
    expect((await api.get("/api/v1/records/users?user_id=1")).status).toBe(401);
    expect((await api.get("/api/v1/groups", KEYS.RECORDS_KEY)).body).toEqual({ error: { code: "FORBIDDEN", message: 'API key "records_only" may not read group' } });
    expect((await api.get("/api/v1/status", KEYS.RECORDS_KEY)).status).toBe(403);
    expect((await api.get("/api/v1/dead-letters", KEYS.RECORDS_KEY)).status).toBe(403);
    expect((await api.call("DELETE", "/api/v1/dead-letters/999999", { key: KEYS.RECORDS_KEY })).status).toBe(404);
    // HTTP Basic with the key as the password, as a browser sends it.
    expect((await api.call("GET", "/api/v1/groups", { basic: KEYS.OPS_KEY })).status).toBe(200);
    expect((await api.call("GET", "/api/v1/groups", { basic: WRONG_KEY })).status).toBe(401);
    // The scraper key reads metrics only; /metrics itself is open without --metrics-auth.
    expect((await api.get("/api/v1/status", KEYS.SCRAPER_KEY)).status).toBe(403);
    expect((await api.get("/metrics")).status).toBe(200);
    expect((await api.get("/healthz")).text).toBe("ok\n");
    expect((await api.get("/readyz")).text).toBe("ready\n");
    // The OpenAPI document needs a key, any key.
    expect((await api.get("/api/v1/openapi.json")).status).toBe(401);
    const openapi = await api.get<{ openapi: string; paths: Record<string, unknown> }>("/api/v1/openapi.json", KEYS.RECORDS_KEY);
    expect(openapi.status).toBe(200);
    expect(openapi.body.openapi).toBe("3.0.3");
    expect(Object.keys(openapi.body.paths).sort()).toEqual([
      "/api/v1/dead-letters",
      "/api/v1/dead-letters/replay",
      "/api/v1/dead-letters/{seq}",
      "/api/v1/exports",
      "/api/v1/exports/retry",
      "/api/v1/groups",
      "/api/v1/groups/{groupId}/members",
      "/api/v1/records/{modelId}",
      "/api/v1/runs",
      "/api/v1/runs/{runId}",
      "/api/v1/status",
    ]);
    // A valid OpenAPI 3.0 document (its schema, and what it says of parameters and paths), as client
    // generators read it; the lookup's free-form query string is one exploded object parameter.
    await expect(SwaggerParser.validate(structuredClone(openapi.body) as unknown as Parameters<typeof SwaggerParser.validate>[0])).resolves.toBeDefined();
    const lookup = (openapi.body.paths["/api/v1/records/{modelId}"] as { get: { parameters: { in: string; name: string }[] } }).get.parameters;
    expect(lookup.map((p) => `${p.in} ${p.name}`).sort()).toEqual(["path modelId", "query lookup"]);
    // Each operation named once, for the clients a generator makes.
    const operations = Object.values(openapi.body.paths).flatMap((path) => Object.values(path as Record<string, { operationId?: string }>));
    expect(operations).toHaveLength(13);
    expect(new Set(operations.map((o) => o.operationId ?? "none")).size).toBe(13);
  });

  it("GET /status: sources, destinations, groups, Runs, version and uptime", async () => {
    // The slot's lag is null until its first poll (at the stream's start, then every 5 s).
    const { status, body } = await waitFor("the lag polled", async () => {
      const answer = await api.get<Json>("/api/v1/status", KEYS.OPS_KEY);
      const sources = answer.body.sources as Json[] | undefined;
      return typeof sources?.[0]?.lagBytes === "number" ? answer : undefined;
    });
    expect(status).toBe(200);
    const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
    expect(body).toMatchObject({ version, pid: daemon.child.pid, ready: true, notReady: null, path: state });
    expect(body.uptimeSeconds).toBeGreaterThan(0);
    expect(body.sources).toEqual([
      { app: "shop", type: "postgres", sources: ["users_table"], state: "streaming", problem: null, paused: false, lagBytes: expect.any(Number) as number, streams: expect.any(Array) as unknown[] },
    ]);
    const destinations = body.destinations as Json[];
    expect(destinations.map((d) => [d.id, d.type, d.modelId, d.outboxDepth, d.oldestPendingSeconds])).toEqual([
      ["contacts", "postgres-table", "users", 0, null],
      ["file_out", "jsonl-file", "users", 0, null],
    ]);
    expect(destinations[0]).toMatchObject({ ready: true, problem: null, exports: { ok: USERS / 10, deadLetter: 0 } });
    expect(destinations[1]).toMatchObject({ exports: { ok: USERS } });
    expect(body.groupSizes).toEqual([
      { id: "vips", modelId: "users", members: USERS / 10 },
      { id: "high", modelId: "users", members: USERS / 10 },
    ]);
    expect(body.records).toEqual([{ model: "users", count: USERS }]);
    expect(body.deadLetters).toEqual({ change: 1, message: 1, export: 0 });
  });

  it("GET /records/{model}: by each unique property, with properties, groups and each destination's last result", async () => {
    const byId = await api.get<{ record: Json }>("/api/v1/records/users?user_id=30", KEYS.OPS_KEY);
    expect(byId.status).toBe(200);
    expect(byId.body.record).toMatchObject({
      id: "30",
      modelId: "users",
      properties: {
        user_id: { value: 30, invalidReason: null },
        email: { value: "user30@example.com", invalidReason: null },
        name: { value: "user30", invalidReason: null },
        vip: { value: true, invalidReason: null },
        score: { value: 30, invalidReason: null },
      },
      groups: ["vips"],
    });
    const destinations = byId.body.record.destinations as Record<string, Json>;
    expect(destinations.contacts).toMatchObject({ acknowledged: { properties: { id: 30, email: "user30@example.com", name: "user30" }, groups: [] }, queued: null, lastResult: { status: "ok", attempts: 0, toDelete: false } });
    expect(destinations.file_out).toMatchObject({ acknowledged: { properties: { id: 30, email: "user30@example.com" } }, queued: null, lastResult: { status: "ok" } });
    // By email, written as a person writes it (emails are normalised as the source's are), and by grouparooId.
    const byEmail = await api.get<{ record: Json }>("/api/v1/records/users?email=User30%40Example.COM", KEYS.OPS_KEY);
    expect(byEmail.status).toBe(200);
    expect(byEmail.body).toEqual(byId.body);
    expect((await api.get<{ record: Json }>("/api/v1/records/users?grouparooId=30", KEYS.OPS_KEY)).body).toEqual(byId.body);
    // A record outside the destination's group: nothing acknowledged there, nothing queued.
    const other = await api.get<{ record: { groups: string[]; destinations: Record<string, Json> } }>("/api/v1/records/users?user_id=99", KEYS.OPS_KEY);
    expect(other.body.record.groups).toEqual(["high"]);
    expect(other.body.record.destinations.contacts).toEqual({ acknowledged: null, queued: null, lastResult: null });
  });

  it("pages a group's members in a stable order while records enter and leave it", async () => {
    const all: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    let changed = false;
    do {
      const page: { status: number; body: { members: string[]; nextCursor: string | null } } = await api.get(`/api/v1/groups/vips/members?limit=450${cursor ? `&cursor=${cursor}` : ""}`, KEYS.READER_KEY);
      expect(page.status).toBe(200);
      expect(page.body.members.length).toBeLessThanOrEqual(450);
      all.push(...page.body.members);
      cursor = page.body.nextCursor;
      pages += 1;
      if (pages === 2 && !changed) {
        // Between two pages: a member before the cursor leaves, one after it leaves, a new one joins
        // far ahead; the pages neither repeat nor skip anyone who stayed.
        changed = true;
        await db.query(`UPDATE users SET vip = false WHERE id IN (10, 19990)`);
        await db.query(`INSERT INTO users VALUES (${USERS + 5}, 'new@example.com', 'new', true, 1)`);
        await waitFor("the changes applied", async () => ((await api.get<{ groupSizes: { id: string; members: number }[] }>("/api/v1/status", KEYS.OPS_KEY)).body.groupSizes[0]?.members === USERS / 10 - 1 ? true : undefined));
      }
    } while (cursor !== null);
    expect(new Set(all).size).toBe(all.length);
    // Record ids in key order (integer ids by value): "10" was read before it left; "19990" left before its page.
    const expected = [...Array.from({ length: USERS / 10 }, (_, i) => String((i + 1) * 10)).filter((id) => id !== "19990"), String(USERS + 5)];
    expect(all).toEqual(expected);
    const groups = await api.get<{ groups: Json[] }>("/api/v1/groups", KEYS.READER_KEY);
    expect(groups.body.groups).toEqual([
      { id: "vips", modelId: "users", matchType: "all", rules: 1, members: USERS / 10 - 1 },
      { id: "high", modelId: "users", matchType: "all", rules: 1, members: USERS / 10 },
    ]);
  });

  it("starts Runs, shows their progress, stops a queued one and refuses to stop a re-read", async () => {
    const reread = await api.call<{ runs: Json[] }>("POST", "/api/v1/runs", { key: KEYS.OPS_KEY, body: { source: "users_table" } });
    const backfill = await api.call<{ runs: Json[] }>("POST", "/api/v1/runs", { key: KEYS.OPS_KEY, body: { group: "high" } });
    expect(reread.status).toBe(202);
    expect(backfill.status).toBe(202);
    const [readRun] = reread.body.runs as [Json];
    const [groupRun] = backfill.body.runs as [Json];
    expect(readRun).toMatchObject({ kind: "reread", target: "source users_table", reason: "asked for through the API (key ops)" });
    expect(groupRun).toMatchObject({ kind: "backfill", target: "group high", state: "queued" });
    // Logged as a config change's Runs are, with who asked.
    const planned = daemon.logs().split("\n").filter((l) => l.includes('"msg":"run planned"')).map((l) => JSON.parse(l) as Json);
    expect(planned).toContainEqual(expect.objectContaining({ run: readRun.id, kind: "reread", target: "source users_table", reason: "asked for through the API (key ops)" }));
    // Behind the re-read, the backfill waits: it is stopped before it starts.
    const stopped = await api.call<{ run: Json }>("DELETE", `/api/v1/runs/${String(groupRun.id)}`, { key: KEYS.OPS_KEY });
    expect(stopped.status).toBe(200);
    expect(stopped.body.run).toMatchObject({ id: groupRun.id, state: "stopped", processed: 0 });
    const running = await api.call("DELETE", `/api/v1/runs/${String(readRun.id)}`, { key: KEYS.OPS_KEY });
    expect(running.status).toBe(409);
    expect(running.body).toMatchObject({ error: { code: "RUN_NOT_STOPPABLE" } });
    const done = await waitFor("the re-read complete", async () => {
      const run = (await api.get<{ run: Json }>(`/api/v1/runs/${String(readRun.id)}`, KEYS.READER_KEY)).body.run;
      return run.state === "complete" ? run : undefined;
    }, 60_000);
    expect(done.processed).toBeGreaterThanOrEqual(USERS);
    expect((await api.get<{ run: Json }>(`/api/v1/runs/${String(groupRun.id)}`, KEYS.READER_KEY)).body.run.state).toBe("stopped");
    const again = await api.call("DELETE", `/api/v1/runs/${String(groupRun.id)}`, { key: KEYS.OPS_KEY });
    expect(again.body).toEqual({ error: { code: "RUN_FINISHED", message: `run "${String(groupRun.id)}" is stopped already` } });
    // A group run to the end.
    const backfill2 = await api.call<{ runs: Json[] }>("POST", "/api/v1/runs", { key: KEYS.OPS_KEY, body: { group: "high" } });
    const id = String((backfill2.body.runs[0] as Json).id);
    const complete = await waitFor("the backfill complete", async () => {
      const run = (await api.get<{ run: Json }>(`/api/v1/runs/${id}`, KEYS.READER_KEY)).body.run;
      return run.state === "complete" ? run : undefined;
    });
    expect(complete).toMatchObject({ kind: "backfill", processed: complete.total as number });
    // A second re-read counts every row it read (its last chunk may commit with the Run's end), and an
    // export Run counts each record once (the destination's records still in the model are not counted again).
    const finished = async (body: Json) => {
      const asked = await api.call<{ runs: Json[] }>("POST", "/api/v1/runs", { key: KEYS.OPS_KEY, body });
      const runId = String((asked.body.runs[0] as Json).id);
      return waitFor(`the ${JSON.stringify(body)} Run complete`, async () => {
        const run = (await api.get<{ run: Json }>(`/api/v1/runs/${runId}`, KEYS.READER_KEY)).body.run;
        return run.state === "complete" ? run : undefined;
      }, 60_000);
    };
    const rows = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM users`)).rows[0]?.n);
    expect((await finished({ source: "users_table" })).processed).toBe(rows);
    const exported = await finished({ destination: "file_out" });
    expect(exported.processed).toBe(exported.total);
    expect(((await api.get<{ runs: Json[] }>("/api/v1/runs?state=stopped", KEYS.READER_KEY)).body.runs).map((r) => r.id)).toEqual([groupRun.id]);
  });

  it("lists failed exports and retries them through the daemon", async () => {
    // User 7 joins the vips: its name is too long for contacts, so its export is dead-lettered.
    await db.query(`UPDATE users SET vip = true WHERE id = 7`);
    const failed = await waitFor("the export dead-lettered", async () => {
      const page = await api.get<{ exports: Json[] }>("/api/v1/exports?destinationId=contacts&state=failed", KEYS.OPS_KEY);
      return page.body.exports.length === 1 ? page.body : undefined;
    });
    expect(failed).toMatchObject({ destinationId: "contacts", state: "failed", nextCursor: null, exports: [{ kind: "export", component: "contacts", recordId: "7", attempts: 1 }] });
    expect(String((failed.exports[0] as Json).reason)).toContain("contacts_name_check");
    const record = await api.get<{ record: { destinations: Record<string, { lastResult: Json }> } }>("/api/v1/records/users?user_id=7", KEYS.OPS_KEY);
    expect(record.body.record.destinations.contacts?.lastResult).toMatchObject({ status: "dead_letter", attempts: 1, message: expect.stringContaining("contacts_name_check") as string });
    expect((await api.get<{ exports: unknown[] }>("/api/v1/exports?destinationId=contacts", KEYS.OPS_KEY)).body.exports).toEqual([]);

    await db.query(`ALTER TABLE contacts DROP CONSTRAINT contacts_name_check`);
    const retried = await api.call("POST", "/api/v1/exports/retry", { key: KEYS.OPS_KEY, body: { destinationId: "contacts" } });
    expect(retried.status).toBe(200);
    expect(retried.body).toEqual({ destinationId: "contacts", requeued: 1 });
    await waitFor("delivered", async () => ((await db.query(`SELECT name FROM contacts WHERE id = 7`)).rows[0]?.name === "a-name-far-too-long" ? true : undefined));
    expect((await api.get<{ exports: unknown[] }>("/api/v1/exports?destinationId=contacts&state=failed", KEYS.OPS_KEY)).body.exports).toEqual([]);
    expect((await api.call("POST", "/api/v1/exports/retry", { key: KEYS.OPS_KEY, body: { destinationId: "contacts" } })).body).toEqual({ destinationId: "contacts", requeued: 0 });
  });

  it("replays a change dead letter, refuses a message, drops one by hand", async () => {
    const listed = await api.get<{ deadLetters: Json[]; nextCursor: string | null }>("/api/v1/dead-letters", KEYS.OPS_KEY);
    expect(listed.body.nextCursor).toBeNull();
    expect(listed.body.deadLetters).toEqual([
      { seq: 1, at: expect.any(String) as string, kind: "change", component: "users_table", reason: "set aside by the test", position: "postgres:shop 0/1" },
      { seq: 2, at: expect.any(String) as string, kind: "message", component: "users_table", reason: "pgoutput message at 0/2 could not be decoded: test", position: "postgres:shop 0/2" },
    ]);
    expect((await api.get<{ deadLetters: Json[] }>("/api/v1/dead-letters?kind=message", KEYS.OPS_KEY)).body.deadLetters.map((l) => l.seq)).toEqual([2]);
    const paged = await api.get<{ deadLetters: Json[]; nextCursor: string }>("/api/v1/dead-letters?limit=1", KEYS.OPS_KEY);
    expect(paged.body.deadLetters.map((l) => l.seq)).toEqual([1]);
    expect((await api.get<{ deadLetters: Json[]; nextCursor: string | null }>(`/api/v1/dead-letters?limit=1&cursor=${paged.body.nextCursor}`, KEYS.OPS_KEY)).body).toMatchObject({ deadLetters: [{ seq: 2 }], nextCursor: null });

    const refused = await api.call("POST", "/api/v1/dead-letters/replay", { key: KEYS.OPS_KEY, body: { seqs: [1, 2] } });
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({ error: { code: "NOT_REPLAYABLE", message: "cannot replay 2: a message its source could not decode: it cannot be applied again (fix the source, then read it again with POST /runs {source}), or delete it" } });
    expect((await api.get("/api/v1/records/users?user_id=50000", KEYS.OPS_KEY)).status).toBe(404);

    const replayed = await api.call("POST", "/api/v1/dead-letters/replay", { key: KEYS.OPS_KEY, body: { seqs: [1] } });
    expect(replayed.status).toBe(200);
    expect(replayed.body).toEqual({ changes: 1, failedAgain: 0, exports: {}, skipped: [] });
    const late = await api.get<{ record: Json }>("/api/v1/records/users?email=late@example.com", KEYS.OPS_KEY);
    expect(late.body.record).toMatchObject({ id: "50000", groups: ["high", "vips"] });
    await waitFor("the replayed record delivered", async () => ((await db.query(`SELECT id FROM contacts WHERE id = 50000`)).rowCount === 1 ? true : undefined));
    // The stream's position did not go back to the letter's.
    const positions = (await api.get<{ positions: { stream: string; position: string }[] }>("/api/v1/status", KEYS.OPS_KEY)).body.positions;
    expect(positions.find((p) => p.stream === "postgres:shop")?.position).not.toBe("0/1");

    expect((await api.call("DELETE", "/api/v1/dead-letters/2", { key: KEYS.RECORDS_KEY })).body).toEqual({ deleted: 2 });
    expect((await api.call("DELETE", "/api/v1/dead-letters/2", { key: KEYS.OPS_KEY })).body).toEqual({ error: { code: "UNKNOWN_DEAD_LETTER", message: "no dead letter with seq 2" } });
    expect((await api.get<{ deadLetters: unknown[] }>("/api/v1/dead-letters", KEYS.OPS_KEY)).body.deadLetters).toEqual([]);
  });

  it("answers bad input on every route with a 4xx naming the problem, and changes nothing", async () => {
    const snapshot = async () => ({
      deadLetters: (await api.get("/api/v1/dead-letters", KEYS.OPS_KEY)).body,
      runs: (await api.get("/api/v1/runs", KEYS.OPS_KEY)).body,
      records: (await api.get<Json>("/api/v1/status", KEYS.OPS_KEY)).body.records,
      failed: (await api.get("/api/v1/exports?destinationId=contacts&state=failed", KEYS.OPS_KEY)).body,
    });
    const before = await snapshot();
    const bad = async (method: string, path: string, body: unknown, status: number, code: string, message: string | RegExp) => {
      const answer = await api.call<{ error: { code: string; message: string } }>(method, path, { key: KEYS.OPS_KEY, ...(body === undefined ? {} : { body }) });
      expect({ method, path, status: answer.status, code: answer.body.error?.code }).toEqual({ method, path, status, code });
      if (typeof message === "string") expect(answer.body.error.message).toBe(message);
      else expect(answer.body.error.message).toMatch(message);
    };
    // Unknown routes, in JSON.
    await bad("GET", "/api/v1/nothing", undefined, 404, "NOT_FOUND", "no route GET /api/v1/nothing");
    await bad("POST", "/api/v1/status", {}, 404, "NOT_FOUND", "no route POST /api/v1/status");
    await bad("GET", "/nowhere", undefined, 404, "NOT_FOUND", "no route GET /nowhere");
    // Records.
    await bad("GET", "/api/v1/records/people?id=1", undefined, 404, "UNKNOWN_MODEL", 'no model "people"');
    await bad("GET", "/api/v1/records/users", undefined, 400, "BAD_REQUEST", "give exactly one unique property and its value (one of user_id, email, grouparooId), e.g. ?user_id=...; got 0");
    await bad("GET", "/api/v1/records/users?user_id=1&email=a@b.c", undefined, 400, "BAD_REQUEST", /got 2$/);
    await bad("GET", "/api/v1/records/users?name=user1", undefined, 400, "NOT_A_UNIQUE_PROPERTY", 'property "name" is not unique: look records up by a unique property (user_id, email) or grouparooId');
    await bad("GET", "/api/v1/records/users?colour=red", undefined, 400, "NOT_A_UNIQUE_PROPERTY", 'model "users" has no property "colour"');
    await bad("GET", "/api/v1/records/users?user_id=abc", undefined, 400, "INVALID_VALUE", '"abc" is not a valid integer value for property "user_id" (Invalid integer value)');
    await bad("GET", "/api/v1/records/users?user_id=123456789", undefined, 404, "RECORD_NOT_FOUND", 'no users record with user_id "123456789"');
    // Groups and paging.
    await bad("GET", "/api/v1/groups/nope/members", undefined, 404, "UNKNOWN_GROUP", 'no group "nope"');
    await bad("GET", "/api/v1/groups/vips/members?limit=5000", undefined, 400, "BAD_REQUEST", /limit/);
    await bad("GET", "/api/v1/groups/vips/members?limit=0", undefined, 400, "BAD_REQUEST", /limit/);
    await bad("GET", "/api/v1/groups/vips/members?limit=ten", undefined, 400, "BAD_REQUEST", /limit/);
    await bad("GET", "/api/v1/groups/vips/members?page=2", undefined, 400, "BAD_REQUEST", /additional properties|page/i);
    await bad("GET", "/api/v1/groups?colour=red", undefined, 400, "BAD_REQUEST", "querystring/colour Unexpected property");
    await bad("GET", "/api/v1/groups/vips/members?cursor=!!!", undefined, 400, "INVALID_CURSOR", /is not a cursor this API handed out/);
    await bad("GET", "/api/v1/groups/vips/members?cursor=bm90IGpzb24", undefined, 400, "INVALID_CURSOR", /is not a cursor this API handed out/);
    const highCursor = (await api.get<{ nextCursor: string }>("/api/v1/groups/high/members?limit=1", KEYS.OPS_KEY)).body.nextCursor;
    await bad("GET", `/api/v1/groups/vips/members?cursor=${highCursor}`, undefined, 400, "INVALID_CURSOR", "cursor is for group-members:high, not group-members:vips");
    // A cursor of the text order an earlier state layout listed members in.
    const textOrderCursor = Buffer.from(JSON.stringify(["members:vips", "1042"])).toString("base64url");
    await bad("GET", `/api/v1/groups/vips/members?cursor=${textOrderCursor}`, undefined, 400, "INVALID_CURSOR", "cursor is from an earlier version: members are now listed with integer ids by value, not as text; page again from the start (without a cursor)");
    // Runs.
    await bad("GET", "/api/v1/runs/nope", undefined, 404, "RUN_NOT_FOUND", 'no run "nope"');
    await bad("GET", "/api/v1/runs?state=sleeping", undefined, 400, "BAD_REQUEST", 'querystring/state must be one of "queued", "running", "complete", "failed", "superseded", "stopped"');
    await bad("POST", "/api/v1/runs", {}, 400, "BAD_REQUEST", /body/);
    await bad("POST", "/api/v1/runs", { group: "nope" }, 404, "UNKNOWN_GROUP", 'no group "nope" in the config');
    await bad("POST", "/api/v1/runs", { group: 5 }, 400, "BAD_REQUEST", /body\/group/);
    await bad("POST", "/api/v1/runs", { group: "vips", colour: "red" }, 400, "BAD_REQUEST", /body/);
    await bad("POST", "/api/v1/runs", "{not json", 400, "BAD_JSON", /JSON/);
    await bad("POST", "/api/v1/runs", [1, 2], 400, "BAD_REQUEST", /body/);
    await bad("POST", "/api/v1/runs", { group: "vips", all: true }, 400, "BAD_REQUEST", '"all" asks for every Run: give it alone, or name the property, source, group or destination without it');
    // Bodies are JSON only (415), and at most 1 MiB (413).
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded"]) {
      const answer = await api.call<{ error: { code: string; message: string } }>("POST", "/api/v1/runs", { key: KEYS.OPS_KEY, body: "group=vips", contentType });
      expect({ contentType, status: answer.status, code: answer.body.error?.code }).toEqual({ contentType, status: 415, code: "UNSUPPORTED_MEDIA_TYPE" });
      expect(answer.body.error.message).toMatch(/send JSON with Content-Type: application\/json$/);
    }
    const huge = await api.call<{ error: { code: string } }>("POST", "/api/v1/dead-letters/replay", { key: KEYS.OPS_KEY, body: { seqs: Array.from({ length: 200_000 }, (_, i) => i + 1) } });
    expect({ status: huge.status, code: huge.body.error?.code }).toEqual({ status: 413, code: "BODY_TOO_LARGE" });
    await bad("DELETE", "/api/v1/runs/nope", undefined, 404, "RUN_NOT_FOUND", 'no run "nope"');
    // Exports.
    await bad("GET", "/api/v1/exports", undefined, 400, "BAD_REQUEST", /destinationId/);
    await bad("GET", "/api/v1/exports?destinationId=nope", undefined, 404, "UNKNOWN_DESTINATION", 'no destination "nope"');
    await bad("GET", "/api/v1/exports?destinationId=contacts&state=lost", undefined, 400, "BAD_REQUEST", /state/);
    await bad("GET", "/api/v1/exports?destinationId=contacts&cursor=abc", undefined, 400, "INVALID_CURSOR", /is not a cursor this API handed out/);
    await bad("POST", "/api/v1/exports/retry", {}, 400, "BAD_REQUEST", /destinationId/);
    await bad("POST", "/api/v1/exports/retry", { destinationId: "nope" }, 404, "UNKNOWN_DESTINATION", 'no destination "nope" in the config');
    await bad("POST", "/api/v1/exports/retry", { destinationId: "contacts", since: "yesterday" }, 400, "BAD_REQUEST", 'since must be an ISO-8601 time or epoch milliseconds (got "yesterday")');
    await bad("POST", "/api/v1/exports/retry", { destinationId: "contacts", since: "2026-01-02T00:00:00Z", until: "2026-01-01T00:00:00Z" }, 400, "BAD_REQUEST", "since is after until");
    await bad("POST", "/api/v1/exports/retry", { destinationId: "contacts", seqs: [424242] }, 404, "UNKNOWN_DEAD_LETTER", 'no dead-lettered export of destination "contacts" with seq 424242');
    await bad("POST", "/api/v1/exports/retry", { destinationId: "contacts", seqs: ["one"] }, 400, "BAD_REQUEST", /seqs/);
    // Dead letters.
    await bad("GET", "/api/v1/dead-letters?kind=poison", undefined, 400, "BAD_REQUEST", /kind/);
    await bad("GET", "/api/v1/dead-letters?limit=100000", undefined, 400, "BAD_REQUEST", /limit/);
    await bad("POST", "/api/v1/dead-letters/replay", {}, 400, "BAD_REQUEST", "name the dead letters: seqs: [...], or all: true (with kind and component to narrow it)");
    await bad("POST", "/api/v1/dead-letters/replay", { seqs: [424242] }, 404, "UNKNOWN_DEAD_LETTER", "no dead letter with seq 424242");
    await bad("POST", "/api/v1/dead-letters/replay", { seqs: [] }, 400, "BAD_REQUEST", /seqs/);
    await bad("POST", "/api/v1/dead-letters/replay", { all: false }, 400, "BAD_REQUEST", /all/);
    await bad("DELETE", "/api/v1/dead-letters/abc", undefined, 400, "BAD_REQUEST", /seq/);
    await bad("DELETE", "/api/v1/dead-letters/0", undefined, 400, "BAD_REQUEST", /seq/);
    expect(await snapshot()).toEqual(before);
  });

  it("status --url renders the running daemon's status; --json; a refused key is 77, no daemon 69, no target 64", async () => {
    const url = `http://${api.http}`;
    const text = await runCli(["status", "--url", url], { env: { ...process.env, GROUPAROO_API_KEY: KEYS.READER_KEY } });
    expect(text.code).toBe(0);
    expect(text.stderr).toBe("");
    expect(text.stdout).toMatch(/^grouparoo-stream \d+\.\d+\.\d+, pid \d+, up [\d.]+[smh], config [0-9a-f]{12}: ready\n/);
    expect(text.stdout).toMatch(/\nsources\nAPP +TYPE +SOURCES +STATE +PAUSED +LAG +STREAMS\nshop +postgres +users_table +streaming +no /);
    expect(text.stdout).toContain("\ngroups\nGROUP  MEMBERS\nhigh   ");
    // The outbox once, with each destination (not again as the state's section, read at another moment).
    expect(text.stdout).toMatch(/\ndestinations\nDESTINATION +TYPE +READY +OUTBOX +OLDEST +OK +RETRIES +DEAD LETTERS\ncontacts +postgres-table +yes +\d+ /);
    expect(text.stdout).not.toContain("\noutbox\n");
    const json = await runCli(["status", "--url", url, "--json", "--api-key", KEYS.READER_KEY]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ pid: daemon.child.pid, ready: true, records: [{ model: "users", count: USERS + 2 }] });
    const refused = await runCli(["status", "--url", url, "--api-key", KEYS.SCRAPER_KEY]);
    expect(refused).toEqual({ code: 77, stdout: "", stderr: `error: the daemon at ${url} answered 403 FORBIDDEN: API key "scraper" may not read status\n` });
    const missing = await runCli(["status", "--url", url], { env: { ...process.env, GROUPAROO_API_KEY: "" } });
    expect(missing).toEqual({ code: 77, stdout: "", stderr: `error: the daemon at ${url} answered 401 UNAUTHORIZED: no API key: send Authorization: Bearer <key> (give --api-key or set GROUPAROO_API_KEY)\n` });
    const nobody = await runCli(["status", "--url", `http://127.0.0.1:${await freePort()}`, "--api-key", KEYS.OPS_KEY]);
    expect(nobody.code).toBe(69);
    expect(nobody.stderr).toMatch(/^error: cannot reach the daemon at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/);
    // A port that fetch refuses ("bad port": 6000, 6665-6669, 10080, ...) but `run --http` takes: the
    // daemon is reached through a TCP relay listening on the first of them that is free here.
    const relay = createServer((socket) => {
      const upstream = connect(Number(api.http.split(":")[1]), "127.0.0.1");
      upstream.on("error", () => socket.destroy());
      socket.on("error", () => upstream.destroy());
      socket.pipe(upstream).pipe(socket);
    });
    let blocked: number | undefined;
    for (const port of [6665, 6666, 6667, 6668, 6669, 6000, 10080]) {
      const bound = await new Promise<boolean>((resolve) => relay.once("error", () => resolve(false)).listen(port, "127.0.0.1", () => resolve(true)));
      if (bound) {
        blocked = port;
        break;
      }
    }
    expect(blocked).toBeDefined();
    try {
      const through = await runCli(["status", "--url", `http://127.0.0.1:${blocked}`, "--json", "--api-key", KEYS.READER_KEY]);
      expect(through.stderr).toBe("");
      expect(JSON.parse(through.stdout)).toMatchObject({ pid: daemon.child.pid, ready: true });
    } finally {
      await new Promise((resolve) => relay.close(resolve));
    }
    expect((await runCli(["status"])).code).toBe(64);
    expect((await runCli(["status", "--url", url, "--state", state])).code).toBe(64);
    expect((await runCli(["status", "--url", "ftp://x"])).code).toBe(64);
    // The offline mode, beside the running daemon, as before.
    const offline = await runCli(["status", "--state", state, "--json"]);
    expect(offline.code).toBe(0);
    expect(JSON.parse(offline.stdout)).toMatchObject({ path: state, records: [{ model: "users", count: USERS + 2 }] });
  });

  it("never puts a key's secret in a log line or an answer", async () => {
    // The page and the metrics too.
    api.answers.push((await api.call("GET", "/", { basic: KEYS.OPS_KEY })).text, (await api.get("/metrics")).text);
    const logs = daemon.logs();
    expect(logs.length).toBeGreaterThan(1000);
    expect(lines(daemon).some((l) => l.msg === "http request" && l.key === "ops")).toBe(true);
    for (const secret of [...Object.values(KEYS), WRONG_KEY]) {
      expect(logs.includes(secret)).toBe(false);
      for (const answer of api.answers) expect(answer.includes(secret)).toBe(false);
    }
    expect(api.answers.length).toBeGreaterThan(100);
  });

  it("is off without apiKey objects (404, logged), on without keys with --api-insecure on loopback only, and --metrics-auth puts /metrics behind a key", { timeout: 60_000 }, async () => {
    // A config without apiKey objects: one source (its own slot, no snapshot) and nothing else.
    const plainConfig = (name: string, extra = "") => {
      const file = join(work, `${name}.yml`);
      writeFileSync(
        file,
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: ${name}_slot, publication: ${name}_pub, snapshot: no_data } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
${extra}`,
      );
      return file;
    };
    const plain = plainConfig("off");
    const offHttp = `127.0.0.1:${await freePort()}`;
    const off = start(["--config", plain, "--state", join(work, "off-state")], offHttp);
    const offApi = new ApiClient(offHttp);
    // The listener answers /healthz as soon as it listens; the mode is logged once the daemon runs.
    await waitFor("running", async () => ((await offApi.get("/readyz")).status === 200 && lines(off).some((l) => String(l.msg).startsWith("API off")) ? true : undefined));
    expect((await offApi.get("/api/v1/status")).body).toEqual({ error: { code: "API_OFF", message: "the API is off: the config has no apiKey objects (add one, or run with --api-insecure on a loopback address)" } });
    expect((await offApi.get("/api/v1/status", KEYS.OPS_KEY)).status).toBe(404);
    expect((await offApi.get("/")).status).toBe(404);
    expect((await offApi.get("/metrics")).status).toBe(200);
    expect(lines(off).find((l) => String(l.msg).startsWith("API off"))).toMatchObject({ level: 30, msg: "API off: the config has no apiKey objects (/api/v1 and / answer 404; --api-insecure serves them without keys on loopback)" });

    const insecureHttp = `127.0.0.1:${await freePort()}`;
    const insecure = start(["--config", plainConfig("insecure"), "--state", join(work, "insecure-state"), "--api-insecure"], insecureHttp);
    const insecureApi = new ApiClient(insecureHttp);
    await waitFor("ready", async () => ((await insecureApi.get("/readyz")).status === 200 && lines(insecure).some((l) => String(l.msg).startsWith("API on")) ? true : undefined));
    expect((await insecureApi.get<Json>("/api/v1/status")).body).toMatchObject({ ready: true, records: [{ model: "users", count: 0 }] });
    expect((await insecureApi.get("/")).status).toBe(200);
    expect(lines(insecure).find((l) => String(l.msg).startsWith("API on"))).toMatchObject({ level: 40, msg: `API on at http://${insecureHttp}/api/v1 WITHOUT keys (--api-insecure, loopback only): anyone who can reach it may read and write` });
    const exposed = await runCli(["run", "--config", plainConfig("exposed"), "--state", join(work, "exposed-state"), "--api-insecure", "--http", `0.0.0.0:${await freePort()}`]);
    expect(exposed.code).toBe(64);
    expect(exposed.stderr).toMatch(/^error: --api-insecure serves the API without keys, so only on a loopback address \(127\.0\.0\.1, ::1, localhost\); --http is 0\.0\.0\.0:\d+\n$/);

    const keyed = plainConfig(
      "guarded",
      `- { class: apiKey, id: scraper, type: specific, apiKey: "\${SCRAPER_KEY}", permissions: [{ topic: metrics, read: true, write: false }] }\n- { class: apiKey, id: reader, type: specific, apiKey: "\${READER_KEY}", permissions: [{ topic: status, read: true, write: false }] }\n`,
    );
    const guardedHttp = `127.0.0.1:${await freePort()}`;
    start(["--config", keyed, "--state", join(work, "guarded-state"), "--metrics-auth"], guardedHttp);
    const guarded = new ApiClient(guardedHttp);
    await waitFor("running", async () => ((await guarded.get("/healthz")).status === 200 ? true : undefined));
    expect((await guarded.get("/metrics")).status).toBe(401);
    expect((await guarded.get("/metrics", WRONG_KEY)).status).toBe(401);
    expect((await guarded.get("/metrics", KEYS.READER_KEY)).body).toEqual({ error: { code: "FORBIDDEN", message: 'API key "reader" may not read metrics' } });
    const scraped = await guarded.get("/metrics", KEYS.SCRAPER_KEY);
    expect(scraped.status).toBe(200);
    expect(scraped.text).toContain("grouparoo_build_info");
    // /healthz and /readyz stay open.
    await waitFor("ready without a key", async () => ((await guarded.get("/readyz")).status === 200 ? true : undefined));
    const refused = await runCli(["run", "--config", plainConfig("refused"), "--state", join(work, "refused-state"), "--metrics-auth", "--http", `127.0.0.1:${await freePort()}`]);
    expect(refused.code).toBe(78);
    expect(refused.stdout).toContain("--metrics-auth puts /metrics behind a key, but the config has no apiKey objects; not starting");
  });
});
