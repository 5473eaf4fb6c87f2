// An update that changes a row's primary key under REPLICA IDENTITY DEFAULT does not send the row's
// unchanged TOAST values (large text or jsonb stored out of line). Before 2026-12-03 the row under its
// new key had them null (as Debezium's placeholder leaves them) until an update wrote those columns,
// while a fresh daemon reads them from the table. The moved row now takes them from the stored one.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { againstOracle } from "../helpers/cdc-oracle.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("postgres-cdc: a key changed by an update that leaves TOAST values unchanged", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "toast_moves");
    await db.query(`CREATE TABLE people (id int PRIMARY KEY, name text, big text, doc jsonb)`);
    // Out of line whatever their size compresses to: every such value is a TOAST pointer.
    await db.query(`ALTER TABLE people ALTER big SET STORAGE EXTERNAL, ALTER doc SET STORAGE EXTERNAL`);
    await db.query(`INSERT INTO people VALUES (1, 'a', repeat('x', 10000), jsonb_build_object('k', repeat('y', 10000)))`);
  });
  afterEach(async () => {
    await db.drop();
  });

  it("keeps the moved row's values, from the snapshot and from the stream, as a fresh daemon reads them", async () => {
    const properties = [
      { id: "name", type: "string", options: { column: "name" } },
      { id: "big", type: "string", options: { column: "big" } },
      { id: "doc", type: "string", options: { column: "doc" } },
      { id: "big_length_ok", type: "string", options: { column: "big" } },
    ];
    const result = await againstOracle(db, "people", properties, [
      `INSERT INTO people VALUES (2, 'b', repeat('z', 10000), '{"n": 2}')`,
      { settle: true },
      `UPDATE people SET id = 11 WHERE id = 1`,
      `UPDATE people SET id = 12, name = 'b2' WHERE id = 2`,
      // Moved twice in one transaction, then restarted and moved again.
      `BEGIN; UPDATE people SET id = 21 WHERE id = 11; UPDATE people SET id = 31 WHERE id = 21; COMMIT`,
      { restart: true },
      `UPDATE people SET id = 13 WHERE id = 12`,
    ]);
    const records = result.state.records as Record<string, { values: Record<string, unknown> }>;
    expect(Object.keys(records).filter((id) => !id.startsWith("people/9000")).sort()).toEqual(["people/13", "people/31"]);
    expect(records["people/31"]?.values).toEqual({ pid: 31, name: "a", big: "x".repeat(10000), big_length_ok: "x".repeat(10000), doc: JSON.stringify({ k: "y".repeat(10000) }) });
    expect(records["people/13"]?.values).toEqual({ pid: 13, name: "b2", big: "z".repeat(10000), big_length_ok: "z".repeat(10000), doc: '{"n":2}' });
    expect(result.state).toEqual(result.oracleState);
    expect(result.remote).toEqual(result.oracleRemote);
  }, 120_000);
});
