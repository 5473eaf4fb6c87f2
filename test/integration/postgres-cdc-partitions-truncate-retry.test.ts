// Some partitions of a captured partitioned table truncated while the re-read they need cannot be
// asked for (the daemon's Runs refuse: it is starting or reloading, or the state refused the write):
// the truncation is recorded with the captured tables (durable before the truncate's position, which
// is acknowledged meanwhile) and asked for again at the next table check, instead of only logged and
// lost for good (the state kept the truncated partition's rows).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresCdcSource } from "../../connectors/postgres/cdc/source.js";
import { Daemon } from "../../daemon/daemon.js";
import { peopleConfig } from "../helpers/cdc-oracle.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

describe("postgres-cdc partitions truncated while a re-read cannot be asked for", () => {
  let db: TestDatabase;
  let work: string;
  const checkMs = PostgresCdcSource.tableCheckMs;
  beforeAll(() => void (PostgresCdcSource.tableCheckMs = 300));
  afterAll(() => void (PostgresCdcSource.tableCheckMs = checkMs));
  beforeEach(async () => {
    work = mkdtempSync(join(tmpdir(), "part-trunc-"));
    db = await createTestDatabase(testPgUrl(), "parttrunc");
    await db.query(`CREATE TABLE people (id int, name text, PRIMARY KEY (id)) PARTITION BY RANGE (id)`);
    await db.query(`CREATE TABLE people_a PARTITION OF people FOR VALUES FROM (0) TO (1000)`);
    await db.query(`CREATE TABLE people_b PARTITION OF people FOR VALUES FROM (1000) TO (1000000)`);
    await db.query(`INSERT INTO people VALUES (1, 'one'), (2000, 'two')`);
  });
  afterEach(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("asks again, and the truncated partition's rows leave the state", async () => {
    const logs: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(peopleConfig(db.url, "trunc_retry", join(work, "out"), "people", [{ id: "name", type: "string", options: { column: "name" } }])));
    const daemon = await Daemon.start({ config: file, state: join(work, "state"), http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, logger);
    if (typeof daemon === "number") throw new Error(`the daemon did not start (exit ${daemon})`);
    try {
      await waitFor("the snapshot", async () => (daemon.state.getRecord("people", "1") && daemon.state.getRecord("people", "2000") && (daemon.runs?.pending().length ?? 0) === 0 ? true : undefined), 30_000);
      const runs = daemon.runs;
      if (!runs) throw new Error("no Runs");
      // The first request is refused, as while the daemon starts or reloads.
      const request = runs.request.bind(runs);
      let refused = 0;
      runs.request = (async (...args: Parameters<typeof request>) => {
        if (refused === 0) {
          refused += 1;
          throw new Error("the daemon is not running its Runs (starting, reloading or stopping)");
        }
        return request(...args);
      }) as typeof runs.request;
      await db.query(`TRUNCATE people_a`);
      await db.query(`INSERT INTO people VALUES (3000, 'three')`);
      await waitFor("the re-read's sweep", async () => (daemon.state.getRecord("people", "1") === undefined && daemon.state.getRecord("people", "3000") && (daemon.runs?.pending().length ?? 0) === 0 ? true : undefined), 20_000);
      expect(refused).toBe(1);
      expect(daemon.state.getRecord("people", "2000")?.values).toMatchObject({ name: "two" });
      expect(logs.filter((l) => l.level === 50).map((l) => l.msg)).toEqual(["asking for a re-read failed; asked again at the next check of the tables"]);
    } finally {
      await daemon.drain("SIGTERM");
      await daemon.finished;
    }
  }, 90_000);
});
