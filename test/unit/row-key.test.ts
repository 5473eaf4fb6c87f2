// A row's key, as every source makes it from the row's key columns.
import { describe, expect, it } from "vitest";
import { rowKey, SUB_MILLISECOND } from "../../core/change.js";

describe("rowKey", () => {
  it("is one column's value as text, or the values of several joined by commas, in the columns' order", () => {
    expect(rowKey(["id"], { id: 42, name: "x" })).toBe("42");
    expect(rowKey(["id"], { id: "a,b" })).toBe("a,b");
    expect(rowKey(["b", "a"], { a: 1, b: "two" })).toBe("two,1");
    expect(rowKey(["a", "b", "c"], { a: 10n, b: true, c: 1.5 })).toBe("10,true,1.5");
  });

  it("writes null and a missing column as String does, as the keys written before it did", () => {
    const row: Record<string, unknown> = { a: null, b: 3 };
    for (const columns of [["a"], ["a", "b"], ["missing", "b"], ["b", "missing"]]) {
      expect(rowKey(columns, row), columns.join("+")).toBe(columns.map((c) => String(row[c])).join(","));
    }
    expect(rowKey(["a", "missing"], row)).toBe("null,undefined");
  });

  it("writes a Date as its UTC ISO text, with the digits past the millisecond its text had (SUB_MILLISECOND)", () => {
    const at = (ms: number, sub?: string) => Object.assign(new Date(ms), sub === undefined ? {} : { [SUB_MILLISECOND]: sub });
    expect(rowKey(["at"], { at: at(1700000000123) })).toBe("2023-11-14T22:13:20.123Z");
    expect(rowKey(["at"], { at: at(1700000000123, "456") })).toBe("2023-11-14T22:13:20.123456Z");
    expect(rowKey(["user", "at"], { user: 7, at: at(1700000000123, "457") })).toBe("7,2023-11-14T22:13:20.123457Z");
    expect(rowKey(["at"], { at: at(-62_000_000_000_000, "5") })).toBe("0005-04-19T09:46:40.0005Z");
    // An invalid Date is written as String writes it.
    expect(rowKey(["at"], { at: new Date(Number.NaN) })).toBe("Invalid Date");
  });
});
