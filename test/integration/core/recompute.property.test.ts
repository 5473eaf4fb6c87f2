// Property: whatever sequence of inserts, updates and deletes arrives, in whatever batches, the
// incrementally maintained records, aggregates and group memberships equal a from-scratch
// recomputation over the same final rows.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Store } from "../../../state/store.js";
import type { Change, Row } from "../../../core/change.js";
import { DAY, change, coreDomain, dumpRecords, recompute } from "../../helpers/core.js";
import { applyBatch } from "../../../streams/batch.js";

const NOW = Date.UTC(2026, 10, 1);
const domain = coreDomain();

const userRow = (id: number) =>
  fc.record({
    id: fc.constant(id),
    // Some shared between users: the lowest id holds a value several carry (Duplicate Value), whatever
    // order they arrived in, as the recomputation gives it.
    email: fc.constantFrom(null, `u${id}@example.com`, `u${id}@other.org`, "shared@example.com", `shared${id % 2}@example.com`),
    first_name: fc.constantFrom(null, "Ada", "alan", "Grace"),
    vip: fc.constantFrom(null, true, false, "t", "0"),
  });
const purchaseRow = (id: number) =>
  fc.record({
    id: fc.constant(id),
    user_id: fc.integer({ min: 1, max: 4 }),
    amount: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(19.99, 0.1, 0.2, 75.5, null)),
    state: fc.constantFrom("paid", "refunded"),
    sku: fc.constantFrom("A", "B", null),
    created_at: fc.integer({ min: NOW - 6 * DAY, max: NOW }).map((ms) => new Date(ms)),
  });

type Op = { source: "users_table" | "purchases_table"; key: number; row: Row | null };
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: 1, max: 4 }).chain((key) => fc.option(userRow(key), { nil: null, freq: 4 }).map((row) => ({ source: "users_table" as const, key, row }))),
  fc.integer({ min: 10, max: 17 }).chain((key) => fc.option(purchaseRow(key), { nil: null, freq: 4 }).map((row) => ({ source: "purchases_table" as const, key, row }))),
);

describe("incremental state equals recomputation", () => {
  it("for random change sequences in random batches", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 60 }), async (ops, cuts) => {
        const dir = mkdtempSync(join(tmpdir(), "recompute-"));
        const store = Store.open(dir);
        try {
          const final = new Map<string, Map<string, Row>>([
            ["users_table", new Map()],
            ["purchases_table", new Map()],
          ]);
          const changes: Change[] = ops.map(({ source, key, row }) => {
            const rows = final.get(source) as Map<string, Row>;
            const existed = rows.has(String(key));
            if (row) rows.set(String(key), row);
            else rows.delete(String(key));
            return change(source, row ? (existed ? "update" : "insert") : "delete", String(key), row);
          });
          let i = 0;
          for (let c = 0; i < changes.length; c += 1) {
            const size = cuts[c % cuts.length] ?? 1;
            await applyBatch(store, domain, changes.slice(i, i + size), NOW);
            i += size;
          }
          expect(dumpRecords(store)).toEqual(recompute(domain, final, NOW));
          for (const group of domain.groups.keys()) {
            const members = [...dumpRecords(store)].filter(([, r]) => r.groups.includes(group)).map(([id]) => id).sort();
            expect(store.membersOf("users", group).sort()).toEqual(members);
            expect(store.countOf("members", group)).toBe(members.length);
          }
          expect(store.countOf("records", "users")).toBe(final.get("users_table")?.size);
        } finally {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 150 },
    );
  });
});
