// A row's key, as every source makes it from the row's key columns.
import { describe, expect, it } from "vitest";
import { rowKey } from "../../core/change.js";

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
});
