// A unique value held by one record and refused to another (Duplicate Value) goes to the other once
// its holder lets it go, as a fresh daemon reading the same rows gives it: checked against one.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { converge, shopConfig } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("a unique value let go of", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "handover");
  });
  afterEach(async () => {
    await db.drop();
  });

  it("goes to the record refused it, with its groups and its destination row, whether the holder changes its value or is deleted", { timeout: 60_000 }, async () => {
    const result = await converge(
      db,
      {
        configs: [shopConfig()],
        writes: () => [
          `INSERT INTO users (id, email, name) VALUES (600, 'u1@example.com', 'dup of 1'), (601, 'u2@example.com', 'dup of 2'), (602, 'u2@example.com', 'dup of 2 too')`,
          `UPDATE users SET email = 'moved@example.com' WHERE id = 1`,
          `DELETE FROM users WHERE id = 2`,
        ],
      },
      "restart",
    );
    expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
    expect(result.table).toEqual(result.oracleTable);
    const email = (id: string) => (result.state.records as Record<string, { values: Record<string, unknown> }>)[`users/${id}`]?.values.email;
    // Before, 600 and 601 kept null for good.
    expect([email("600"), email("601"), email("602")]).toEqual(["u1@example.com", "u2@example.com", null]);
    expect(result.table.find((row) => row.id === 600)?.email).toBe("u1@example.com");
  });
});

describe("a unique value several records carry", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "lowestid");
  });
  afterEach(async () => {
    await db.drop();
  });

  it("is held by the lowest id whichever row arrived first, as a fresh daemon reading the table in its own order holds it", { timeout: 60_000 }, async () => {
    const result = await converge(
      db,
      {
        configs: [shopConfig()],
        writes: () => [
          `INSERT INTO users (id, email, name) VALUES (700, 'shared@example.com', 'first in')`,
          `INSERT INTO users (id, email, name) VALUES (650, 'shared@example.com', 'second in, lower id')`,
          // 700's row moves behind 650's in the table: a fresh snapshot reads 650 first.
          `UPDATE users SET name = 'first in, updated' WHERE id = 700`,
          `INSERT INTO users (id, email, name) VALUES (710, 'other@example.com', 'holds other')`,
          `INSERT INTO users (id, email, name) VALUES (705, 'other@example.com', 'takes other')`,
        ],
      },
      "restart",
    );
    expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
    expect(result.table).toEqual(result.oracleTable);
    const record = (id: string) => (result.state.records as Record<string, { values: Record<string, unknown>; invalid: Record<string, unknown> }>)[`users/${id}`];
    // Before, 700 and 710 held them (the first to arrive), where a fresh daemon gave them to 650 and 705.
    expect([650, 700, 705, 710].map((id) => [record(String(id))?.values.email, record(String(id))?.invalid.email])).toEqual([
      ["shared@example.com", undefined],
      [null, "Duplicate Value"],
      ["other@example.com", undefined],
      [null, "Duplicate Value"],
    ]);
    expect(result.table.find((row) => row.id === 650)?.email).toBe("shared@example.com");
    expect(result.table.find((row) => row.id === 700)?.email ?? null).toBe(null);
  });
});
