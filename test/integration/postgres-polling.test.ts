// Polling sources against real Postgres: a table import pages by high watermark with ties across
// page boundaries, picks up later changes on its schedule and resumes from its durable position; a
// query import upserts its rows; an app refresh query triggers the schedules as soon as it changes;
// between two runs, readiness follows whether the database answers.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { POLLING_PROBE_MS, postgresTableImportSource, type PostgresPollingSource } from "../../connectors/postgres/polling.js";
import { startPostgres } from "../services/postgres.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { Store } from "../../state/store.js";
import type { Change } from "../../core/change.js";
import { pino } from "pino";
import pg from "pg";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testPgUrl } from "../services/use.js";

type Obj = Record<string, unknown>;

describe("postgres polling sources", () => {
  let db: TestDatabase;
  let run: CdcRun | undefined;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "polling");
  });
  afterEach(async () => {
    await run?.stop();
    run = undefined;
    await db.drop();
  });

  const config = (extra: Obj[], appOptions: Obj = {}) =>
    validConfig([
      { class: "app", id: "pg", type: "postgres", options: { connectionString: db.url, ...appOptions } },
      { class: "model", id: "users" },
      ...extra,
    ]);

  const scores = (r: CdcRun) => Object.fromEntries([...r.store.recordsOf("users")].map((rec) => [rec.id, rec.values.score]));

  it("imports a table by high watermark, ties across pages included, then later changes, then resumes", { timeout: 60_000 }, async () => {
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, score int, updated_at timestamptz NOT NULL)`);
    // Ten rows, seven of them sharing one updated_at: pages of 3 split the ties.
    await db.query(`INSERT INTO users SELECT g, g, CASE WHEN g <= 7 THEN '2026-01-01T00:00:00Z'::timestamptz ELSE '2026-01-02T00:00:00Z'::timestamptz + g * interval '1 second' END FROM generate_series(1, 10) g`);
    const objects: Obj[] = [
      { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at", batchSize: 3 }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "users_import", options: { column: "score" } },
      { class: "schedule", id: "often", sourceId: "users_import", recurringFrequency: 1000 },
    ];
    run = startSource(config(objects), postgresTableImportSource);
    const first = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i + 1), i + 1]));
    await waitFor("first run", async () => (JSON.stringify(scores(run as CdcRun)) === JSON.stringify(first) ? true : undefined));
    expect(JSON.parse(run.store.position("poll:pg:users_import") ?? "{}")).toEqual({ hw: "2026-01-02 00:00:10+00", offset: 1, key: ["10"] });

    await db.query(`UPDATE users SET score = 100, updated_at = '2026-02-01T00:00:00Z' WHERE id IN (2, 9)`);
    await db.query(`INSERT INTO users VALUES (11, 11, '2026-02-01T00:00:00Z')`);
    await waitFor("the next scheduled run", async () => (run && scores(run)["11"] === 11 && scores(run)["2"] === 100 && scores(run)["9"] === 100 ? true : undefined));
    expect(JSON.parse(run.store.position("poll:pg:users_import") ?? "{}")).toEqual({ hw: "2026-02-01 00:00:00+00", offset: 3, key: ["11"] });
    // Finished runs leave nothing behind (a long-running daemon schedules one every period).
    const poller = run.connector as PostgresPollingSource;
    await waitFor("runs settled", async () => (poller.runsUnderWay === 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 2500)); // two or three more scheduled runs
    await waitFor("runs settled again", async () => (poller.runsUnderWay === 0 ? true : undefined));

    // A restart resumes from the durable position: only rows at or past it are read again.
    const state = run.store.path;
    await run.stop({ keepState: true });
    await db.query(`UPDATE users SET score = -1 WHERE id = 1`); // not re-read: its watermark did not move
    await db.query(`INSERT INTO users VALUES (12, 12, '2026-03-01T00:00:00Z')`);
    run = startSource(config(objects), postgresTableImportSource, state);
    await waitFor("resumed run", async () => (run && scores(run)["12"] === 12 ? true : undefined));
    expect(scores(run)["1"]).toBe(1);
    expect(JSON.parse(run.store.position("poll:pg:users_import") ?? "{}")).toEqual({ hw: "2026-03-01 00:00:00+00", offset: 1, key: ["12"] });
  });

  it("reads a row again once it moves past the last watermark read: the last row read itself, and a tie of it read on a page before", { timeout: 60_000 }, async () => {
    // A two-column primary key, pages of two: the ties of watermark 2 span three pages.
    await db.query(`CREATE TABLE users (tenant text, id int, score int, updated_at int NOT NULL, PRIMARY KEY (tenant, id))`);
    await db.query(`INSERT INTO users VALUES ('a', 1, 1, 1), ('a', 2, 2, 2), ('b', 3, 3, 2), ('a', 4, 4, 2), ('c', 5, 5, 2), ('b', 6, 6, 2)`);
    const objects: Obj[] = [
      { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at", batchSize: 2 }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "users_import", options: { column: "score" } },
      { class: "schedule", id: "often", sourceId: "users_import", recurringFrequency: 1000 },
    ];
    // Records are keyed by the row's key (tenant,id): their scores by user_id.
    const byUserId = (r: CdcRun) => Object.fromEntries([...r.store.recordsOf("users")].map((rec) => [String(rec.values.user_id), rec.values.score]).sort(([a], [b]) => Number(a) - Number(b)));
    run = startSource(config(objects), postgresTableImportSource);
    await waitFor("first run", async () => (JSON.stringify(byUserId(run as CdcRun)) === JSON.stringify({ "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6 }) ? true : undefined));
    // The last row read in (watermark, key) order is ('c', 5).
    await waitFor("the position", async () => (run?.store.position("poll:pg:users_import") === JSON.stringify({ hw: "2", offset: 5, key: ["c", "5"] }) ? true : undefined));
    const poller = run.connector as PostgresPollingSource;
    await waitFor("runs settled", async () => (poller.runsUnderWay === 0 ? true : undefined));
    // Updated as an updated_at column is: the last row read, and a row read among its ties. Before,
    // the next page skipped as many rows >= the watermark as had been read at it (five), so both
    // were missed until their next update, where a fresh import reads them.
    await db.query(`UPDATE users SET score = 50, updated_at = 3 WHERE id = 5`);
    await db.query(`UPDATE users SET score = 20, updated_at = 3 WHERE id = 2`);
    await waitFor("the next run", async () => (JSON.stringify(byUserId(run as CdcRun)) === JSON.stringify({ "1": 1, "2": 20, "3": 3, "4": 4, "5": 50, "6": 6 }) ? true : undefined), 10_000);
    await waitFor("the position after it", async () => (run?.store.position("poll:pg:users_import") === JSON.stringify({ hw: "3", offset: 2, key: ["c", "5"] }) ? true : undefined));

    // After a restart, the same from the durable position.
    const state = run.store.path;
    await run.stop({ keepState: true });
    await db.query(`UPDATE users SET score = 500, updated_at = 4 WHERE id = 5`);
    run = startSource(config(objects), postgresTableImportSource, state);
    await waitFor("resumed run", async () => (run && byUserId(run)["5"] === 500 ? true : undefined), 10_000);
    expect(byUserId(run)).toEqual({ "1": 1, "2": 20, "3": 3, "4": 4, "5": 500, "6": 6 });
  });

  /** Four users (two sharing updated_at 2) and an hourly table import started on a state holding `position`. */
  const importFrom = async (position: object) => {
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, score int, updated_at int NOT NULL)`);
    await db.query(`INSERT INTO users VALUES (1, 1, 1), (2, 2, 2), (3, 3, 2), (4, 4, 3)`);
    const objects: Obj[] = [
      { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "users_import", options: { column: "score" } },
      { class: "schedule", id: "hourly", sourceId: "users_import", recurringFrequency: 3_600_000 },
    ];
    const state = mkdtempSync(join(tmpdir(), "polling-state-"));
    const seeded = Store.open(state);
    await seeded.transact((tx) => tx.setPosition("poll:pg:users_import", JSON.stringify(position)));
    await seeded.close();
    return startSource(config(objects), postgresTableImportSource, state);
  };

  it("resumes a position written without a key (an earlier version's) by its offset among the ties", { timeout: 60_000 }, async () => {
// Rows 1 and 2 were read: the next rows are 3 (a tie of 2) and 4.
    run = await importFrom({ hw: "2", offset: 1 });
    await waitFor("the run", async () => (run && scores(run)["4"] === 4 ? true : undefined));
    expect(scores(run)).toEqual({ "3": 3, "4": 4 });
    expect(JSON.parse(run.store.position("poll:pg:users_import") ?? "{}")).toEqual({ hw: "3", offset: 1, key: ["4"] });
  });

  it("imports the table from the start when the stored watermark no longer reads as its column (its type changed), instead of failing every run", { timeout: 60_000 }, async () => {
// Read when updated_at was a timestamp: now an integer, the watermark means nothing.
    run = await importFrom({ hw: "2026-01-01 00:00:00+00", offset: 1, key: ["2"] });
    await waitFor("the run", async () => (run && scores(run)["4"] === 4 ? true : undefined));
    expect(scores(run)).toEqual({ "1": 1, "2": 2, "3": 3, "4": 4 });
    expect(JSON.parse(run.store.position("poll:pg:users_import") ?? "{}")).toEqual({ hw: "3", offset: 1, key: ["4"] });
  });

  it("resumes a position whose key the primary key no longer reads (its type changed) by its offset among the ties, instead of failing every run", { timeout: 60_000 }, async () => {
// Rows 1 and 2 were read when the key was a uuid: the next rows are 3 (a tie of 2) and 4.
    run = await importFrom({ hw: "2", offset: 1, key: ["a0eebc99"] });
    await waitFor("the run", async () => (run && scores(run)["4"] === 4 ? true : undefined));
    expect(scores(run)).toEqual({ "3": 3, "4": 4 });
    expect(JSON.parse(run.store.position("poll:pg:users_import") ?? "{}")).toEqual({ hw: "3", offset: 1, key: ["4"] });
  });

  it("does not report a re-read complete when it was stopped part-way (a drain or a reload)", { timeout: 60_000 }, async () => {
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, score int, updated_at int NOT NULL)`);
    await db.query(`INSERT INTO users SELECT g, g, g FROM generate_series(1, 10) g`);
    const cfg = config([
      { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at", batchSize: 3 }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
      { class: "source", id: "totals", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query: "SELECT id, score FROM users" }, mapping: { id: "user_id" } },
      { class: "property", id: "score", type: "integer", sourceId: "totals", options: { column: "score" } },
    ]);
    for (const sourceId of ["users_import", "totals"]) {
      // No schedule: only the Run reads. Paused (backpressure) while it reads, then stopped.
      const connector = postgresTableImportSource.create(cfg.apps[0] as never, cfg.sources, { logger: pino({ level: "silent" }), positions: new Map(), schedules: [] }) as PostgresPollingSource;
      const seen: Change[] = [];
      const subscription = connector.changes().subscribe({ next: (change) => seen.push(change) });
      await waitFor("reading", async () => (connector.ready() ? true : undefined));
      connector.pause();
      await connector.reread({ runId: "r1", sourceIds: [sourceId] });
      await waitFor("the run under way", async () => (connector.runsUnderWay === 1 ? true : undefined));
      await new Promise((r) => setTimeout(r, 200));
      await connector.stop();
      await new Promise((r) => setTimeout(r, 200));
      subscription.unsubscribe();
      const markers = seen.filter((c) => c.position.stream === "run:r1").map((c) => c.position.position);
      // Before, the interrupted run counted as done: the Run was reported complete, its definitions
      // recorded, and the rows it had not read yet were never read (a source without a schedule).
      expect({ sourceId, markers }).toEqual({ sourceId, markers: [] });
      expect(seen.filter((c) => c.sourceId === sourceId && c.op !== "marker").length).toBeLessThan(10);
    }
  });

  it("upserts the rows of a query import, and a refresh query triggers it at once", { timeout: 60_000 }, async () => {
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(`CREATE TABLE purchases (id serial PRIMARY KEY, user_id int, amount int)`);
    await db.query(`INSERT INTO users (id) VALUES (1), (2)`);
    await db.query(`INSERT INTO purchases (user_id, amount) VALUES (1, 10), (1, 5), (2, 7)`);
    const objects: Obj[] = [
      { class: "source", id: "totals", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query: "SELECT u.id, coalesce(sum(p.amount), 0)::int AS score FROM users u LEFT JOIN purchases p ON p.user_id = u.id GROUP BY u.id" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "totals", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "totals", options: { column: "score" } },
      { class: "schedule", id: "hourly", sourceId: "totals", recurringFrequency: 3_600_000 },
    ];
    run = startSource(config(objects, { refresh: { query: "SELECT count(*) FROM purchases", recurringFrequency: 200 } }), postgresTableImportSource);
    await waitFor("first run", async () => (JSON.stringify(scores(run as CdcRun)) === JSON.stringify({ "1": 15, "2": 7 }) ? true : undefined));
    // The refresh query has seen the current count (its last result, private to the connector).
    await waitFor("the refresh query ran", async () => ((run?.connector as unknown as { lastRefresh?: string }).lastRefresh === JSON.stringify([{ count: "3" }]) ? true : undefined));
    await db.query(`INSERT INTO purchases (user_id, amount) VALUES (2, 100)`);
    // The schedule is hourly: only the refresh query can bring this in within seconds.
    await waitFor("refresh-triggered run", async () => (run && scores(run)["2"] === 107 ? true : undefined), 10_000);
  });

  it("reads a query import's result through a cursor, applying its first rows before the query has returned them all", { timeout: 60_000 }, async () => {
    // Row 1500 waits for an advisory lock this test holds: the rows before it reach the state while
    // the query is still under way. Before 2026-12-03 the whole result was read into memory first
    // (a query over millions of rows could exhaust the process's), and nothing was applied here.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(4242)");
      const query = "SELECT g AS id, g * 2 AS score FROM generate_series(1, 2500) g WHERE g <> 1500 OR pg_advisory_lock_shared(4242) IS NOT NULL;";
      const objects: Obj[] = [
        { class: "source", id: "totals", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query }, mapping: { id: "user_id" } },
        { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "totals", options: { column: "id" } },
        { class: "property", id: "score", type: "integer", sourceId: "totals", options: { column: "score" } },
        { class: "schedule", id: "hourly", sourceId: "totals", recurringFrequency: 3_600_000 },
      ];
      run = startSource(config(objects), postgresTableImportSource);
      // The cursor's first read (1,000 rows) is applied; its second waits at row 1500.
      await waitFor("the first rows", async () => (run && Object.keys(scores(run)).length === 1000 ? true : undefined), 20_000);
      expect(scores(run)).toEqual(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i + 1), (i + 1) * 2])));
      await holder.query("SELECT pg_advisory_unlock(4242)");
      const all = Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [String(i + 1), (i + 1) * 2]));
      await waitFor("every row", async () => (run && JSON.stringify(scores(run)) === JSON.stringify(all) ? true : undefined), 20_000);
    } finally {
      await holder.end();
    }
  });

  it("runs once more after a run under way when the refresh query changes meanwhile (the run may have read before the change)", { timeout: 60_000 }, async () => {
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(`CREATE TABLE purchases (id serial PRIMARY KEY, user_id int, amount int)`);
    await db.query(`INSERT INTO users (id) VALUES (1), (2)`);
    await db.query(`INSERT INTO purchases (user_id, amount) VALUES (1, 10), (2, 7)`);
    const objects: Obj[] = [
      { class: "source", id: "totals", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query: "SELECT u.id, coalesce(sum(p.amount), 0)::int AS score FROM users u LEFT JOIN purchases p ON p.user_id = u.id GROUP BY u.id" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "totals", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "totals", options: { column: "score" } },
      { class: "schedule", id: "hourly", sourceId: "totals", recurringFrequency: 3_600_000 },
    ];
    run = startSource(config(objects, { refresh: { query: "SELECT count(*) FROM purchases", recurringFrequency: 200 } }), postgresTableImportSource);
    const poller = run.connector as PostgresPollingSource;
    const lastRefresh = () => (poller as unknown as { lastRefresh?: string }).lastRefresh;
    await waitFor("first run", async () => (JSON.stringify(scores(run as CdcRun)) === JSON.stringify({ "1": 10, "2": 7 }) && lastRefresh() === JSON.stringify([{ count: "2" }]) ? true : undefined));
    // Held by backpressure: the run the first change triggers has read its rows and waits to emit them.
    poller.pause();
    await db.query(`INSERT INTO purchases (user_id, amount) VALUES (1, 100)`);
    await waitFor("a run under way", async () => (poller.runsUnderWay === 1 && lastRefresh() === JSON.stringify([{ count: "3" }]) ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 300)); // its query has run
    // A change after its query: the refresh query sees it while that run is still under way.
    await db.query(`INSERT INTO purchases (user_id, amount) VALUES (2, 1000)`);
    await waitFor("the refresh query saw it", async () => (lastRefresh() === JSON.stringify([{ count: "4" }]) ? true : undefined), 10_000);
    poller.resume();
    // Before, the change waited for the next scheduled run (an hour here).
    await waitFor("both changes", async () => (JSON.stringify(scores(run as CdcRun)) === JSON.stringify({ "1": 110, "2": 1007 }) ? true : undefined), 10_000);
  });

  it("takes what a query no longer returns out of the records: back to null for a secondary source", { timeout: 60_000 }, async () => {
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(`CREATE TABLE scores (user_id int PRIMARY KEY, score int, active boolean)`);
    await db.query(`INSERT INTO users (id) VALUES (1), (2), (3)`);
    await db.query(`INSERT INTO scores VALUES (1, 10, true), (2, 20, true), (3, 30, false)`);
    const objects: Obj[] = [
      { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
      { class: "source", id: "active_scores", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query: "SELECT user_id, score FROM scores WHERE active" }, mapping: { user_id: "user_id" } },
      { class: "property", id: "score", type: "integer", sourceId: "active_scores", options: { column: "score", aggregationMethod: "max" } },
      { class: "schedule", id: "users_often", sourceId: "users_import", recurringFrequency: 1000 },
      { class: "schedule", id: "scores_often", sourceId: "active_scores", recurringFrequency: 1000 },
    ];
    run = startSource(config(objects), postgresTableImportSource);
    await waitFor("first runs", async () => (JSON.stringify(scores(run as CdcRun)) === JSON.stringify({ "1": 10, "2": 20, "3": null }) ? true : undefined));
    await db.query(`UPDATE scores SET active = false WHERE user_id = 2`);
    await db.query(`UPDATE scores SET active = true WHERE user_id = 3`);
    // The query no longer returns user 2's row: its score goes back to what no rows give, null.
    await waitFor("the next query run", async () => (JSON.stringify(scores(run as CdcRun)) === JSON.stringify({ "1": 10, "2": null, "3": 30 }) ? true : undefined));
    expect(run.store.rowOf("active_scores", "2")).toBeUndefined();
  });

  it("sets a query row whose mapped column is NULL aside as a dead letter, once, instead of a record keyed \"null\"", { timeout: 60_000 }, async () => {
    await db.query(`CREATE TABLE users (id int, email text, score int)`);
    await db.query(`INSERT INTO users VALUES (1, 'a@example.com', 1), (NULL, 'b@example.com', 2), (NULL, 'c@example.com', 3)`);
    const objects: Obj[] = [
      { class: "source", id: "q", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query: "SELECT id, email, score FROM users" }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "q", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "q", options: { column: "score" } },
      { class: "schedule", id: "hourly", sourceId: "q", recurringFrequency: 3_600_000 },
    ];
    run = startSource(config(objects), postgresTableImportSource);
    const poller = run.connector as PostgresPollingSource;
    await waitFor("the first run", async () => (run?.store.position("poll:pg:q") !== undefined && poller.runsUnderWay === 0 ? true : undefined));
    // Before, both rows were keyed "null": a record of id "null", the second row replacing the first.
    const reason = "postgres-query-import source q: the query returned a row whose mapped column id is NULL; it identifies no record and is not imported";
    const letters = () => run?.store.recentDeadLetters(10).map((l) => (l.kind === "message" ? { kind: l.kind, sourceId: l.sourceId, reason: l.reason, payload: l.change.deadLetter?.payload } : { kind: l.kind }));
    await waitFor("the dead letters", async () => (letters()?.length === 2 ? true : undefined));
    expect(scores(run)).toEqual({ "1": 1 });
    expect(letters()).toEqual([
      { kind: "message", sourceId: "q", reason, payload: { id: null, email: "b@example.com", score: 2 } },
      { kind: "message", sourceId: "q", reason, payload: { id: null, email: "c@example.com", score: 3 } },
    ]);
    // The next run returns them again: they are not set aside twice.
    await db.query(`INSERT INTO users VALUES (2, 'd@example.com', 4)`);
    expect(await poller.trigger("q")).toBe(true);
    await waitFor("the second run", async () => (run && scores(run)["2"] === 4 ? true : undefined));
    expect(scores(run)).toEqual({ "1": 1, "2": 4 });
    expect(letters()?.length).toBe(2);
  });

  it("tries a re-read again while its database does not answer, instead of failing the Run until the next start", { timeout: 90_000 }, async () => {
    const server = await startPostgres();
    let restarted: Promise<void> | undefined;
    let connector: PostgresPollingSource | undefined;
    try {
      const url = server.url;
      const { default: pg } = await import("pg");
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`CREATE TABLE users (id int PRIMARY KEY, updated_at int NOT NULL)`);
      await client.query(`INSERT INTO users SELECT g, g FROM generate_series(1, 10) g`);
      await client.end();
      const cfg = validConfig([
        { class: "app", id: "pg", type: "postgres", options: { connectionString: url } },
        { class: "model", id: "users" },
        { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at" }, mapping: { id: "user_id" } },
        { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
      ]);
      const own = postgresTableImportSource.create(cfg.apps[0] as never, cfg.sources, { logger: pino({ level: "silent" }), positions: new Map(), schedules: [] }) as PostgresPollingSource;
      connector = own;
      const seen: Change[] = [];
      own.changes().subscribe({ next: (change) => seen.push(change) });
      await waitFor("reading", async () => (own.ready() ? true : undefined));
      restarted = server.restart(4000);
      await waitFor("the server down", async () => {
        const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        probe.on("error", () => undefined);
        try {
          await probe.connect();
          await probe.end();
          return undefined;
        } catch {
          return true;
        }
      });
      await own.reread({ runId: "r1", sourceIds: ["users_import"] });
      await restarted;
      // Before, the Run failed at once ("failed:..."), and stayed so until the next start.
      await waitFor("the re-read done", async () => (seen.some((c) => c.position.stream === "run:r1") ? true : undefined), 60_000);
      expect(seen.filter((c) => c.position.stream === "run:r1").map((c) => c.position.position)).toEqual(["complete"]);
      expect(seen.filter((c) => c.sourceId === "users_import" && c.op === "update").map((c) => c.key)).toEqual(Array.from({ length: 10 }, (_, i) => String(i + 1)));
    } finally {
      await connector?.stop();
      await restarted?.catch(() => undefined);
      await server.stop();
    }
  });

  it("is not ready while its database is down between two runs, and ready again once it answers", { timeout: 90_000 }, async () => {
    // A server of its own, to take down: the schedule is hourly, so no run can notice.
    const server = await startPostgres();
    let own: CdcRun | undefined;
    let restarted: Promise<void> | undefined;
    try {
      const url = server.url;
      const { default: pg } = await import("pg");
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`CREATE TABLE users (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
      await client.query(`INSERT INTO users (id) VALUES (1), (2)`);
      await client.end();
      own = startSource(
        validConfig([
          { class: "app", id: "pg", type: "postgres", options: { connectionString: url } },
          { class: "model", id: "users" },
          { class: "source", id: "users_import", type: "postgres-table-import", appId: "pg", modelId: "users", options: { table: "users", highWatermarkColumn: "updated_at" }, mapping: { id: "user_id" } },
          { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_import", options: { column: "id" } },
          { class: "schedule", id: "hourly", sourceId: "users_import", recurringFrequency: 3_600_000 },
        ]),
        postgresTableImportSource,
      );
      const poller = own.connector as PostgresPollingSource;
      await waitFor("the first run", async () => (own && own.store.countOf("records", "users") === 2 && poller.runsUnderWay === 0 ? true : undefined));
      expect(poller.ready()).toBe(true);
      // Down for three probe periods: not ready within one, ready again within one of its return.
      const downMs = 3 * POLLING_PROBE_MS;
      const wentDown = Date.now();
      restarted = server.restart(downMs);
      await waitFor("not ready", async () => (poller.ready() ? undefined : true), downMs);
      expect(Date.now() - wentDown).toBeLessThan(downMs);
      await restarted;
      await waitFor("ready again", async () => (poller.ready() ? true : undefined), 3 * POLLING_PROBE_MS);
      expect(poller.problem()).toBeNull();
      expect(poller.runsUnderWay).toBe(0);
    } finally {
      await own?.stop();
      // A failure while the server is down: it comes back before it is stopped for good.
      await restarted?.catch(() => undefined);
      await server.stop();
    }
  });
});
