// Ids at the size limit (core/keys.ts) in real LMDB: the longest keys, two ids of 800 bytes beside
// config ids of 120 characters (a row waiting for its record, then attached to it), are stored, and
// one byte more is set aside or invalid instead of failing the batch.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compileDomain } from "../../../core/domain.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { asRaw } from "../../helpers/config.js";
import { change } from "../../helpers/core.js";

const M = "m".repeat(120);
const P = "p".repeat(120);
const S = "s".repeat(120);
const result = validateObjects(
  asRaw([
    { class: "app", id: "db", type: "postgres", options: { database: "shop" } },
    { class: "model", id: M },
    { class: "source", id: "things", type: "postgres-cdc", appId: "db", modelId: M, options: { table: "things" }, mapping: { k: P } },
    { class: "source", id: S, type: "postgres-cdc", appId: "db", modelId: M, options: { table: "notes" }, mapping: { thing: P } },
    { class: "property", id: P, type: "string", unique: true, sourceId: "things", options: { column: "k" } },
    { class: "property", id: "notes", type: "integer", sourceId: S, options: { column: "id", aggregationMethod: "count" } },
  ]),
);
if (!result.config) throw new Error(JSON.stringify(result.issues));
const domain = compileDomain(result.config);

describe("ids at the size limit of keys", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "long-keys-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores the longest keys with two ids of 800 bytes, and sets aside a row key of 801", async () => {
    const id = "é".repeat(400); // 800 bytes in UTF-8
    const noteKey = "n".repeat(800);
    // The note waits for its record (pending: model, property, value, source, row key), then attaches.
    await applyBatch(store, domain, [change(S, "insert", noteKey, { id: 1, thing: id })], 0);
    const applied = await applyBatch(store, domain, [change("things", "insert", id, { k: id }), change(S, "insert", "n".repeat(801), { id: 2, thing: id })], 0);
    expect(store.getRecord(M, id)?.values).toEqual({ [P]: id, notes: 1 });
    expect(applied.deadLetters).toBe(1);
    expect(store.sourceDeadLetters().map((l) => l.reason)).toEqual([`the row key of source "${S}" is 801 bytes in UTF-8, more than the 800 bytes the state can key it by`]);
    await applyBatch(store, domain, [change(S, "delete", noteKey, null), change("things", "delete", id, null)], 0);
    expect(store.getRecord(M, id)).toBeUndefined();
    expect(store.rowCount(S)).toBe(0);
  });
});
