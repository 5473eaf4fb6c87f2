// DDL on a captured table while the daemon streams: a column its properties read given another type,
// dropped and added again under its name, or another column renamed into its name. The table's rows
// change without sending a change (a table rewrite, a default, a rename are not decoded as rows), so
// before 2026-12-03 the rows not written since kept the values they had, while a fresh daemon reads
// them as they are now. The connector now sees the read columns change (every table check, and at
// start) and reads the table's sources again. An unrelated column added reads nothing again.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresCdcSource } from "../../connectors/postgres/cdc/source.js";
import { againstOracle } from "../helpers/cdc-oracle.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const sentinel = (id: string) => id.startsWith("people/9000");

describe("postgres-cdc: DDL on a captured table mid-stream", () => {
  let db: TestDatabase;
  const checkMs = PostgresCdcSource.tableCheckMs;
  beforeAll(() => void (PostgresCdcSource.tableCheckMs = 300));
  afterAll(() => void (PostgresCdcSource.tableCheckMs = checkMs));
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "ddl");
    await db.query(`CREATE TABLE people (id int PRIMARY KEY, name text, score int, extra text, tier text)`);
    await db.query(`INSERT INTO people SELECT g, 'n' || g, g * 10, 'e' || g, 'gold' FROM generate_series(1, 6) g`);
  });
  afterEach(async () => {
    await db.drop();
  });

  const properties = [
    { id: "name", type: "string", options: { column: "name" } },
    { id: "score", type: "integer", options: { column: "score" } },
    { id: "extra", type: "string", options: { column: "extra" } },
  ];
  const values = (state: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(state.records as Record<string, { values: Record<string, unknown> }>).filter(([id]) => !sentinel(id)).map(([id, r]) => [id, [r.values.score, r.values.extra]]));

  it("reads the sources again when a read column changes type, is made again, or another is renamed into its name", async () => {
    const result = await againstOracle(db, "people", properties, [
      // Another type, its values rewritten: 10 becomes 10.5 (an invalid integer), 20 stays 20.
      `ALTER TABLE people ALTER COLUMN score TYPE numeric USING (CASE WHEN score = 10 THEN 10.5 ELSE score END)`,
      `UPDATE people SET name = 'x' WHERE id = 6`,
      // The table checks run every 300 ms here: each DDL is found by one of its own.
      { sleepMs: 1500 },
      { settle: true },
      // Dropped, and another column renamed into its name.
      `ALTER TABLE people DROP COLUMN extra`,
      `ALTER TABLE people RENAME COLUMN tier TO extra`,
      { sleepMs: 1500 },
      { settle: true },
      { restart: true },
      // A column no source reads: nothing is read again.
      `ALTER TABLE people ADD COLUMN unrelated int`,
      `INSERT INTO people (id, name, score, extra) VALUES (7, 'n7', 70, 'silver')`,
    ]);
    expect(values(result.state)).toEqual({
      "people/1": [null, "gold"],
      "people/2": [20, "gold"],
      "people/3": [30, "gold"],
      "people/4": [40, "gold"],
      "people/5": [50, "gold"],
      "people/6": [60, "gold"],
      "people/7": [70, "silver"],
    });
    expect(result.state).toEqual(result.oracleState);
    expect(result.remote).toEqual(result.oracleRemote);
    const warnings = result.logs.filter((l) => l.level === 40).map((l) => String(l.msg));
    expect(warnings).toEqual([
      "table public.people changed columns its sources read (score: integer (column 3) to numeric (column 3)): its sources are read again",
      "table public.people changed columns its sources read (extra: text (column 4) to text (column 5)): its sources are read again",
    ]);
  }, 120_000);

  it("finds a read column made again while the daemon was stopped", async () => {
    const result = await againstOracle(db, "people", properties, [
      { restart: true },
      `ALTER TABLE people DROP COLUMN extra`,
      `ALTER TABLE people ADD COLUMN extra text DEFAULT 'later'`,
      { restart: true },
    ]);
    expect(Object.values(values(result.state)).map(([, extra]) => extra)).toEqual(["later", "later", "later", "later", "later", "later"]);
    expect(result.state).toEqual(result.oracleState);
    expect(result.remote).toEqual(result.oracleRemote);
  }, 120_000);
});
