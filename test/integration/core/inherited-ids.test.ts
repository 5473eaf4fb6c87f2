// Ids that every JavaScript object inherits a member under (`constructor`, `toString`, `valueOf`) are
// ordinary ids: a property named so holds its value, an aggregate named so is built without a
// "repair", and a group's rule on one reads the property (not a top-level key). `__proto__`, which
// an object cannot hold as a key at all, is refused by the config (invalid-configs.test.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { validateObjects } from "../../../daemon/config/validate.js";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { asRaw } from "../../helpers/config.js";
import { change, coreConfigObjects, coreDomain, dumpRecords, recompute, rowsAfter } from "../../helpers/core.js";

const NOW = Date.UTC(2026, 10, 1);
const extra = [
  { class: "property", id: "constructor", type: "string", sourceId: "users_table", options: { column: "first_name" } },
  { class: "property", id: "toString", type: "boolean", sourceId: "users_table", options: { column: "vip" } },
  { class: "property", id: "valueOf", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
  {
    class: "group",
    id: "hasOwnProperty",
    modelId: "users",
    rules: [
      { propertyId: "constructor", op: "eq", match: "Ada" },
      { propertyId: "valueOf", op: "gte", match: 1 },
    ],
  },
];

describe("ids every object inherits a member under", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("validate, and the state equals the recomputation, with no repairs", async () => {
    const validated = validateObjects(asRaw(coreConfigObjects(extra)));
    expect(validated.issues.filter((i) => i.severity === "error")).toEqual([]);
    const domain = coreDomain(extra);
    dir = mkdtempSync(join(tmpdir(), "inherited-ids-"));
    const store = Store.open(dir);
    try {
      const changes = [
        change("users_table", "insert", "1", { id: 1, email: "a@example.com", first_name: "Ada", vip: true }),
        change("users_table", "insert", "2", { id: 2, email: "b@example.com", first_name: "Bob", vip: false }),
        change("purchases_table", "insert", "10", { id: 10, user_id: 1, amount: 5, state: "paid", sku: "A", created_at: new Date(NOW - 1000) }),
        change("purchases_table", "insert", "11", { id: 11, user_id: 2, amount: 7, state: "paid", sku: "B", created_at: new Date(NOW - 500) }),
      ];
      const first = await applyBatch(store, domain, changes.slice(0, 3), NOW);
      const second = await applyBatch(store, domain, changes.slice(3), NOW);
      expect([...first.repairs, ...second.repairs]).toEqual([]);
      const held = dumpRecords(store);
      expect(held).toEqual(recompute(domain, rowsAfter(changes, changes.length), NOW));
      expect(held.get("1")?.values).toMatchObject({ constructor: "Ada", toString: true, valueOf: 1 });
      expect(held.get("2")?.values).toMatchObject({ constructor: "Bob", toString: false, valueOf: 1 });
      expect(held.get("1")?.groups).toContain("hasOwnProperty");
      expect(held.get("2")?.groups).not.toContain("hasOwnProperty");
    } finally {
      await store.close();
    }
  });
});
