// Issue #12 item 8: the example runs outside the demo. examples/users-purchases/schema.sql creates the
// tables its config reads and writes (the demo runs the same file), and `validate --connect` checks
// the example against them: every source's table and column, the destination's table.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const example = new URL("../../examples/users-purchases", import.meta.url).pathname;
const sql = readFileSync(new URL("../../examples/users-purchases/schema.sql", import.meta.url), "utf8");
const section = (name: string) => (sql.split(/^-- section: /m).find((s) => s.startsWith(`${name}\n`)) ?? "").slice(name.length + 1);

describe("examples/users-purchases/schema.sql", () => {
  let shop: TestDatabase;
  let crm: TestDatabase;
  beforeAll(async () => {
    shop = await createTestDatabase(testPgUrl(), "example_shop");
    crm = await createTestDatabase(testPgUrl(), "example_crm");
  });
  afterAll(async () => {
    await shop?.drop();
    await crm?.drop();
  });

  it("creates what the example needs, checked by validate --connect", async () => {
    const env = { ...process.env, DATABASE_URL: shop.url, CRM_PORT: new URL(crm.url).port, CRM_DATABASE: crm.name };
    const before = await runCli(["validate", "--config", example, "--connect"], { env });
    expect(before.code).toBe(78);
    expect(before.stderr).toContain('error: source "users_table": table public.users does not exist');
    expect(before.stderr).toContain('error: destination "crm_contacts": table public.contacts does not exist');

    await shop.query(section("shop"));
    await crm.query(section("crm"));
    expect((await shop.query<{ n: number }>(`SELECT count(*)::int AS n FROM users`)).rows[0]?.n).toBe(3);
    const after = await runCli(["validate", "--config", example, "--connect"], { env });
    expect(after).toEqual({ code: 0, stdout: `${example}: valid config: 2 apps, 1 model, 2 sources, 8 properties, 2 groups, 1 destination (checked against the live systems)\n`, stderr: "" });
  });
});
