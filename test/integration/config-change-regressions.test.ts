// The config edits that once left the state wrong or stopped the daemon for good (issue #11's cases
// 1 to 4), replayed with the writes that exposed them: each ends exactly as a fresh daemon on the new
// config (the oracle), with the values a person would check by hand, and the daemon never stops.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { converge, find, shopConfig, type Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const withProperty = (property: Obj): Obj[] => [...shopConfig(), property];
const values = (state: Record<string, unknown>, id: string) => ((state.records as Record<string, { values: Record<string, unknown>; groups: string[] }>)[`users/${id}`]);

describe("config changes that once broke the state", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "regressions");
  });
  afterEach(async () => {
    await db.drop();
  });

  const check = (result: Awaited<ReturnType<typeof converge>>) => {
    expect({ ...result.state, remote: null }).toEqual({ ...result.oracleState, remote: null });
    expect(result.table).toEqual(result.oracleTable);
  };

  it("1. a count added later counts the purchases made before it, and deleting older ones never goes below zero", { timeout: 60_000 }, async () => {
    const count: Obj = { class: "property", id: "purchases_made", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } };
    // User 2 has purchases 1, 11, 21, 31 (user_id = 1 + id % 10).
    const result = await converge(
      db,
      {
        configs: [shopConfig(), withProperty(count)],
        writes: (step) =>
          step === 0
            ? []
            : [`INSERT INTO purchases VALUES (500, 2, 10, 0, 'successful', 'sku1', '2026-04-01T00:00:00Z')`, `DELETE FROM purchases WHERE id IN (1, 11)`],
      },
      "restart",
    );
    check(result);
    expect(values(result.state, "2")?.values.purchases_made).toBe(3);
  });

  it("2. a max changed to min keeps applying purchases instead of refusing the state it finds", { timeout: 60_000 }, async () => {
    const changed = shopConfig();
    (find(changed, "max_amount").options as Obj).aggregationMethod = "min";
    const result = await converge(
      db,
      { configs: [shopConfig(), changed], writes: (step) => (step === 0 ? [] : [`INSERT INTO purchases VALUES (501, 3, 1, 0, 'successful', 'sku1', '2026-04-01T00:00:00Z')`]) },
      "restart",
    );
    check(result);
    expect(values(result.state, "3")?.values.max_amount).toBe(1);
  });

  it("3. a filter changed from eq successful to ne failed, then a refunded purchase and a user's last counted one deleted", { timeout: 60_000 }, async () => {
    const changed = shopConfig();
    find(changed, "lifetime_value").filters = [{ key: "state", op: "ne", match: "failed" }];
    // User 6 has purchases 5 (refunded), 15 (successful), 25 (refunded), 35 (successful).
    const result = await converge(
      db,
      { configs: [shopConfig(), changed], writes: (step) => (step === 0 ? [] : [`DELETE FROM purchases WHERE id = 5`, `DELETE FROM purchases WHERE user_id = 6`]) },
      "restart",
    );
    check(result);
    expect(values(result.state, "6")?.values.lifetime_value).toBe(0);
    for (const [, record] of Object.entries(result.state.records as Record<string, { values: { lifetime_value?: number } }>)) {
      expect(record.values.lifetime_value ?? 0).toBeGreaterThanOrEqual(0);
    }
  });

  it("4. a group removed, data changed so a member should leave, the identical group back: it is evaluated again", { timeout: 60_000 }, async () => {
    const withoutVips = shopConfig().filter((o) => o.id !== "vips");
    delete (find(withoutVips, "crm").destinationGroupMemberships as Obj).VIP;
    // User 3 is a vip (3 % 3 = 0); while the group is gone it stops being one.
    const result = await converge(
      db,
      { configs: [shopConfig(), withoutVips, shopConfig()], writes: (step) => (step === 1 ? [`UPDATE users SET vip = false WHERE id = 3`] : []) },
      "restart",
    );
    check(result);
    expect(values(result.state, "3")?.groups).not.toContain("vips");
    expect(result.table.find((row) => row.id === 3)?.segments).not.toContain("VIP");
  });

  for (const mode of ["reload", "restart"] as const) {
    it(`5. a property made unique (${mode}) with a duplicate: the record it becomes null on leaves the group on it, and its destination row loses it`, { timeout: 60_000 }, async () => {
      const withGroup = (unique: boolean): Obj[] => {
        const config = [...shopConfig(), { class: "group", id: "has_email", modelId: "users", rules: [{ propertyId: "email", op: "exists" }] }];
        find(config, "email").unique = unique;
        (find(config, "crm", "destination").destinationGroupMemberships as Obj).HasEmail = "has_email";
        return config;
      };
      const result = await converge(db, { configs: [withGroup(false), withGroup(true)], writes: (step) => (step === 0 ? [`INSERT INTO users (id, email, name) VALUES (600, 'u1@example.com', 'dup')`] : []) }, mode);
      check(result);
      // Before, the Run took email out and read it again as null, which looked like no change: 600 stayed in the group, and its row kept the email.
      expect(values(result.state, "600")?.values.email).toBeNull();
      expect(values(result.state, "600")?.groups).not.toContain("has_email");
      expect(result.table.find((row) => row.id === 600)?.email ?? null).toBeNull();
    });
  }
});
