// A postgres-cdc source on a partitioned table, under a publication that does not publish via the root
// (Postgres's default): pgoutput sends each change under its partition's name. Before 2026-12-03 every
// streamed change of such a table was dropped (only the snapshot was read), a restart failed adding the
// table to its own publication again ("already member"), and a partition made or truncated while the
// daemon ran went unnoticed. Each time the state and the destination end as a fresh daemon's.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresCdcSource } from "../../connectors/postgres/cdc/source.js";
import { againstOracle } from "../helpers/cdc-oracle.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

/** The rows the oracle helper writes to know a daemon applied everything (ids from 900,001). */
const sentinel = (id: string) => Math.floor(Number(id.split("/")[1]) / 1000) === 900;

describe("postgres-cdc on a partitioned table", () => {
  let db: TestDatabase;
  const checkMs = PostgresCdcSource.tableCheckMs;
  beforeAll(() => void (PostgresCdcSource.tableCheckMs = 300));
  afterAll(() => void (PostgresCdcSource.tableCheckMs = checkMs));
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "partitions");
    await db.query(`CREATE TABLE people (id int, name text, PRIMARY KEY (id)) PARTITION BY RANGE (id)`);
    await db.query(`CREATE TABLE people_a PARTITION OF people FOR VALUES FROM (0) TO (1000)`);
    await db.query(`CREATE TABLE people_b PARTITION OF people FOR VALUES FROM (1000) TO (1000000)`);
    await db.query(`INSERT INTO people VALUES (1, 'one'), (2000, 'two')`);
  });
  afterEach(async () => {
    await db.drop();
  });

  it("streams the partitions' changes, restarts, follows a new partition and a truncated one, and ends as a fresh daemon", async () => {
    const result = await againstOracle(db, "people", [{ id: "name", type: "string", options: { column: "name" } }], [
      `INSERT INTO people VALUES (3, 'three'), (3000, 'four')`,
      `UPDATE people SET name = 'uno' WHERE id = 1`,
      `DELETE FROM people WHERE id = 2000`,
      // A key moved to another partition: a delete from one, an insert into the other.
      `UPDATE people SET id = 1500 WHERE id = 3`,
      { settle: true },
      { restart: true },
      `INSERT INTO people VALUES (4, 'four')`,
      `CREATE TABLE people_c PARTITION OF people FOR VALUES FROM (1000000) TO (2000000)`,
      `INSERT INTO people VALUES (1000001, 'c1'), (1000002, 'c2')`,
      { settle: true },
      `UPDATE people SET name = 'c1b' WHERE id = 1000001`,
      `TRUNCATE people_a`,
      { settle: true },
      `INSERT INTO people VALUES (5, 'five')`,
    ]);
    const names = Object.fromEntries(Object.entries(result.state.records as Record<string, { values: { name: unknown } }>).filter(([id]) => !sentinel(id)).map(([id, r]) => [id, r.values.name]));
    expect(names).toEqual({ "people/5": "five", "people/1500": "three", "people/3000": "four", "people/1000001": "c1b", "people/1000002": "c2" });
    expect(result.state).toEqual(result.oracleState);
    expect(result.remote).toEqual(result.oracleRemote);
    expect(result.logs.filter((l) => l.level === 40).map((l) => l.msg).sort()).toEqual([
      "partitions public.people_a of table public.people were truncated (not all of its partitions): its sources are read again",
      "table public.people has new partitions (public.people_c) whose changes were not read until now: its sources are read again",
    ]);
  }, 120_000);

  it("truncates the source when the partitioned table is truncated whole", async () => {
    const result = await againstOracle(db, "people", [{ id: "name", type: "string", options: { column: "name" } }], [
      `INSERT INTO people VALUES (3, 'three')`,
      { settle: true },
      `TRUNCATE people`,
      `INSERT INTO people VALUES (7, 'seven')`,
    ]);
    const ids = Object.keys(result.state.records as object).filter((id) => !sentinel(id));
    expect(ids).toEqual(["people/7"]);
    expect(result.state).toEqual(result.oracleState);
    expect(result.remote).toEqual(result.oracleRemote);
    expect(result.logs.filter((l) => (l.level as number) >= 40)).toEqual([]);
  }, 120_000);
});
