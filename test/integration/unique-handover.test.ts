// A unique value held by one record and refused to another (Duplicate Value) goes to the other once
// its holder lets it go, as a fresh daemon reading the same rows gives it: checked against one.
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { converge, shopConfig } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";

describe("a unique value let go of", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(inject("pgUrl"), "handover");
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
