// Names every JavaScript object inherits a member under (`constructor`, `toString`, `__proto__`, ...):
// as ids or as mapping keys the config refuses them (invalid-configs.test.ts); as a source's column
// names they are ordinary columns: a row without one lacks it (it does not read the inherited
// member), so an update that leaves it out keeps the record's value.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { change, coreDomain } from "../../helpers/core.js";

const NOW = Date.UTC(2026, 10, 1);
const extra = [
  { class: "property", id: "nickname", type: "string", sourceId: "users_table", options: { column: "constructor" } },
  { class: "property", id: "shown", type: "string", sourceId: "users_table", options: { column: "toString" } },
];

describe("source columns named after what every object inherits", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("are read as the row's own: an update without them keeps the values, a row that never had them holds null, valid", async () => {
    const domain = coreDomain(extra);
    dir = mkdtempSync(join(tmpdir(), "inherited-columns-"));
    const store = Store.open(dir);
    try {
      await applyBatch(store, domain, [
        change("users_table", "insert", "1", { id: 1, email: "a@example.com", first_name: "Ada", vip: true, constructor: "Countess", toString: "yes" }),
        change("users_table", "insert", "2", { id: 2, email: "b@example.com", first_name: "Bob", vip: false }),
      ], NOW);
      // An update carrying only some values (Postgres leaves unchanged TOASTed ones out).
      const result = await applyBatch(store, domain, [change("users_table", "update", "1", { id: 1, email: undefined, first_name: "Ada L.", vip: undefined, constructor: undefined, toString: undefined })], NOW + 1);
      expect(result.repairs).toEqual([]);
      const ada = store.getRecord("users", "1");
      expect(ada?.values).toMatchObject({ first_name: "Ada L.", nickname: "Countess", shown: "yes" });
      expect(ada?.invalid).toEqual({});
      const bob = store.getRecord("users", "2");
      expect(bob?.values).toMatchObject({ nickname: null, shown: null });
      expect(bob?.invalid).toEqual({});
    } finally {
      await store.close();
    }
  });
});
