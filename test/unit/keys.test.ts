// The limit on ids taken from source data (record ids, row keys, unique values): measured in UTF-8
// only when it may matter, and chosen so that the state's longest keys, two ids at the limit beside
// config ids, encode (as lmdb-js encodes keys) within LMDB's maximum key size.
import { toBufferKey } from "ordered-binary";
import { describe, expect, it } from "vitest";
import { LMDB_MAX_KEY_BYTES, MAX_ID_BYTES, compareIds, idKey, oversizedId, oversizedRowKeyReason, oversizedUniqueReason } from "../../core/keys.js";

describe("the size limit of ids in keys", () => {
  it("lets an id of up to MAX_ID_BYTES UTF-8 bytes through and gives the size of a longer one", () => {
    expect(MAX_ID_BYTES).toBe(800);
    expect(oversizedId("")).toBeUndefined();
    expect(oversizedId("x".repeat(800))).toBeUndefined();
    expect(oversizedId("x".repeat(801))).toBe(801);
    expect(oversizedId("x".repeat(3000))).toBe(3000);
    // Two bytes per character: 400 fit, 401 do not (under 800 characters, so measured).
    expect(oversizedId("é".repeat(400))).toBeUndefined();
    expect(oversizedId("é".repeat(401))).toBe(802);
    // Three bytes per character: 266 are never measured (798 bytes at most); 267 are.
    expect(oversizedId("€".repeat(266))).toBeUndefined();
    expect(oversizedId("€".repeat(267))).toBe(801);
    // A character outside the BMP is two UTF-16 units and four bytes.
    expect(oversizedId("😀".repeat(200))).toBeUndefined();
    expect(oversizedId("😀".repeat(201))).toBe(804);
  });

  it("names the source, the key's size and the limit in its reasons", () => {
    expect(oversizedRowKeyReason("things_table", true, 3000)).toBe('the row key of source "things_table" (its record\'s id) is 3000 bytes in UTF-8, more than the 800 bytes the state can key it by');
    expect(oversizedRowKeyReason("notes_table", false, 3000)).toBe('the row key of source "notes_table" is 3000 bytes in UTF-8, more than the 800 bytes the state can key it by');
    expect(oversizedUniqueReason(3000)).toBe("Value too long to be unique (3000 bytes in UTF-8, at most 800)");
  });

  it("keeps the longest keys of the state within LMDB's limit with two ids at the limit and config ids of 124 characters", () => {
    const config = (c: string) => c.repeat(124);
    // Escaped first characters (below 28) and characters 0 to 4 cost the most.
    const ids = ["x".repeat(MAX_ID_BYTES), `\u0001${"é".repeat(399)}`, `\u0003${"\u0002".repeat(MAX_ID_BYTES - 1)}`, "😀".repeat(MAX_ID_BYTES / 4)];
    for (const id of ids) expect(oversizedId(id), JSON.stringify(id.slice(0, 3))).toBeUndefined();
    for (const a of ids) {
      for (const b of ids) {
        const pending = toBufferKey([config("m"), config("p"), a, config("s"), b]);
        const attached = toBufferKey([config("m"), a, config("s"), b]);
        const range = toBufferKey([config("m"), config("p"), a, "\u{10FFFF}\u{10FFFF}"]);
        expect(Math.max(pending.length, attached.length, range.length)).toBeLessThanOrEqual(LMDB_MAX_KEY_BYTES);
      }
    }
  });
});

describe("the order of ids", () => {
  it("orders ids as the state's keys do: canonical integers by value, then other text by its UTF-8 bytes", () => {
    const ids = ["a", "100", "-7", "007", "\uffff", "20", "\u{1d4b3}", "0", "-0", "B", "2", "1234567890123456"];
    const sorted = [...ids].sort(compareIds);
    expect(sorted).toEqual(["-7", "0", "2", "20", "100", "-0", "007", "1234567890123456", "B", "a", "\uffff", "\u{1d4b3}"]);
    // The same order as ordered-binary gives the keys the state builds with idKey.
    const byKey = [...ids].sort((x, y) => Buffer.compare(toBufferKey([idKey(x)]), toBufferKey([idKey(y)])));
    expect(byKey).toEqual(sorted);
    expect(compareIds("5", "5")).toBe(0);
  });
});
