// Partitions made or dropped between two of postgres-cdc's table checks, with a restart before the
// next check (a SIGHUP reload or a SIGTERM does the same): the new source's map of partitions holds
// the new one already, and a dropped partition's rows left without a change. The changes the new
// partition's rows sent before the restart were dropped and their positions acknowledged, so only a
// re-read brings them; the partitions seen are stored with the tables' OIDs, and compared after it.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresCdcSource } from "../../connectors/postgres/cdc/source.js";
import { againstOracle } from "../helpers/cdc-oracle.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const sentinel = (id: string) => Math.floor(Number(id.split("/")[1]) / 1000) === 900;

describe("postgres-cdc partitions made or dropped just before a restart", () => {
  let db: TestDatabase;
  const checkMs = PostgresCdcSource.tableCheckMs;
  // Only the check as each daemon starts: the periodic one never comes within the test.
  beforeAll(() => void (PostgresCdcSource.tableCheckMs = 3_600_000));
  afterAll(() => void (PostgresCdcSource.tableCheckMs = checkMs));
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "partrestart");
    await db.query(`CREATE TABLE people (id int, name text, PRIMARY KEY (id)) PARTITION BY RANGE (id)`);
    await db.query(`CREATE TABLE people_a PARTITION OF people FOR VALUES FROM (0) TO (1000)`);
    await db.query(`CREATE TABLE people_b PARTITION OF people FOR VALUES FROM (1000) TO (1000000)`);
    await db.query(`CREATE TABLE people_old PARTITION OF people FOR VALUES FROM (-1000) TO (0)`);
    await db.query(`INSERT INTO people VALUES (1, 'one'), (2000, 'two'), (-5, 'old')`);
  });
  afterEach(async () => {
    await db.drop();
  });

  it("reads the table again after the restart, and ends as a fresh daemon", async () => {
    const result = await againstOracle(db, "people", [{ id: "name", type: "string", options: { column: "name" } }], [
      `CREATE TABLE people_c PARTITION OF people FOR VALUES FROM (1000000) TO (2000000)`,
      `INSERT INTO people VALUES (1000001, 'c1')`,
      `DROP TABLE people_old`,
      { settle: true },
      { restart: true },
      { settle: true },
    ]);
    const names = Object.fromEntries(Object.entries(result.state.records as Record<string, { values: { name: unknown } }>).filter(([id]) => !sentinel(id)).map(([id, r]) => [id, r.values.name]));
    expect(names).toEqual({ "people/1": "one", "people/2000": "two", "people/1000001": "c1" });
    expect(result.state).toEqual(result.oracleState);
    expect(result.remote).toEqual(result.oracleRemote);
    expect(result.logs.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      "table public.people has new partitions (public.people_c) whose changes were not read until now, and lost partitions (public.people_old: dropped or detached) whose rows left it without a change: its sources are read again",
    ]);
  }, 120_000);
});
