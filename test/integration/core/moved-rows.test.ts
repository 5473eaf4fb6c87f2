// Rows whose key an update changed (Change.movedFrom). From a key the state cannot key a row or record
// by: like a delete of that key, it is set aside (the old key was never stored), and the row under its
// new key is stored. Replayed (nothing left under the old key): a no-op, the values the change does
// not carry (unchanged TOAST values) staying the moved row's instead of turning null.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { change, coreDomain, user } from "../../helpers/core.js";

const T = Date.UTC(2026, 10, 1, 12, 0, 0);
const domain = coreDomain();

describe("a row moved from a key too long for the state", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "moved-long-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const bytes of [801, 4000]) {
    it(`sets the old key of ${bytes} bytes aside and stores the row under its new key (primary and secondary)`, async () => {
      await applyBatch(store, domain, [user(1, { email: "a@example.com", first_name: "Ada" })], T);
      const long = "k".repeat(bytes);
      const result = await applyBatch(
        store,
        domain,
        [
          { ...change("users_table", "insert", "2", { id: 2, email: "b@example.com", first_name: "Bo" }, T, { id: long }), movedFrom: long },
          { ...change("purchases_table", "insert", "11", { id: 11, user_id: 1, amount: 30, state: "paid", sku: "A", created_at: T }, T, { id: long }), movedFrom: long },
        ],
        T,
      );
      expect(store.getRecord("users", "2")?.values).toMatchObject({ user_id: 2, email: "b@example.com", first_name: "Bo" });
      expect(store.getRecord("users", "1")?.values).toMatchObject({ purchase_count: 1, lifetime_value: 30 });
      expect([...store.rowsOf("purchases_table")].map(([key]) => key)).toEqual(["11"]);
      expect(result.deadLetters).toBe(2);
      expect(store.sourceDeadLetters().map((l) => l.reason)).toEqual([
        `the row key of source "users_table" (its record's id) is ${bytes} bytes in UTF-8, more than the 800 bytes the state can key it by`,
        `the row key of source "purchases_table" is ${bytes} bytes in UTF-8, more than the 800 bytes the state can key it by`,
      ]);
      // The state still takes writes.
      await applyBatch(store, domain, [user(3, { email: "c@example.com" })], T);
      expect(store.getRecord("users", "3")).toBeDefined();
    });
  }
});

describe("a row move replayed", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "moved-replay-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("changes nothing: the values the change does not carry stay the moved row's (primary and secondary)", async () => {
    await applyBatch(store, domain, [user(1, { email: "a@example.com", first_name: "Ada" }), change("purchases_table", "insert", "10", { id: 10, user_id: 1, amount: 30, state: "paid", sku: "A", created_at: T }, T)], T);
    const move = () => [
      { ...change("users_table", "insert", "2", { id: 2, email: "a@example.com", first_name: undefined }, T, { id: 1 }), movedFrom: "1" },
      { ...change("purchases_table", "insert", "11", { id: 11, user_id: 2, amount: 30, state: "paid", sku: undefined, created_at: T }, T, { id: 10 }), movedFrom: "10" },
    ];
    await applyBatch(store, domain, move(), T);
    const once = { record: store.getRecord("users", "2"), rows: [...store.rowsOf("purchases_table")] };
    expect(once.record?.values).toMatchObject({ first_name: "Ada", purchase_count: 1, skus: ["A"] });
    await applyBatch(store, domain, move(), T);
    expect({ record: store.getRecord("users", "2"), rows: [...store.rowsOf("purchases_table")] }).toEqual(once);
  });
});
