// Aggregations, exact cases: spec validation, every filter operator (null handling, numeric / date /
// text comparison, "in" lists), every aggregation method under insert / update / delete sequences with
// exact results, empty results, rows moving in and out of the filters and between records, ties, Date
// sort columns, exact float sums, and states that survive a JSON round trip.
import { describe, expect, it } from "vitest";
import {
  aggregateFromScratch,
  aggregateValue,
  applyRowChange,
  emptyAggregate,
  aggregateProblems,
  isAggregateSpecValid,
  rowPassesFilters,
  type AggregateSpec,
  type AggregateState,
  type PropertyFilter,
  type Row,
} from "../../core/aggregates.js";
import { AGGREGATION_METHODS, SORTED_AGGREGATIONS } from "../../core/vocabulary.js";
import type { AggregationMethod, PropertyValue } from "../../core/vocabulary.js";

const utc = (iso: string): number => {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) throw new Error(`bad test date ${iso}`);
  return t;
};

function spec(method: AggregationMethod, extra: Partial<AggregateSpec> = {}): AggregateSpec {
  return { method, column: "v", ...(SORTED_AGGREGATIONS.includes(method) ? { sortColumn: "at" } : {}), filters: [], isArray: false, ...extra };
}

/** One record's rows and its incremental state, checked against the from-scratch definition at every step. */
class Record1 {
  readonly rows = new Map<string, Row>();
  state: AggregateState;
  constructor(readonly spec: AggregateSpec) {
    this.state = emptyAggregate(spec);
  }
  put(rowKey: string, row: Row): this {
    const before = this.rows.get(rowKey) ?? null;
    this.state = applyRowChange(this.spec, this.state, rowKey, before, row, () => this.rows);
    this.rows.set(rowKey, row);
    return this.check();
  }
  del(rowKey: string): this {
    const before = this.rows.get(rowKey);
    if (before === undefined) throw new Error(`no row ${rowKey}`);
    this.state = applyRowChange(this.spec, this.state, rowKey, before, null, () => this.rows);
    this.rows.delete(rowKey);
    return this.check();
  }
  get value(): PropertyValue | PropertyValue[] {
    return aggregateValue(this.spec, this.state);
  }
  private check(): this {
    expect(this.value).toStrictEqual(aggregateFromScratch(this.spec, this.rows));
    return this;
  }
}

const pass = (filter: PropertyFilter, row: Row): boolean => rowPassesFilters([filter], row);

describe("isAggregateSpecValid", () => {
  it("accepts every method with what it needs", () => {
    for (const method of AGGREGATION_METHODS) expect(isAggregateSpecValid(spec(method)), method).toBeNull();
    expect(isAggregateSpecValid(spec("exact", { isArray: true }))).toBeNull();
    expect(isAggregateSpecValid(spec("count", { sortColumn: undefined }))).toBeNull();
  });

  it("needs a sortColumn for most / least recent value, and only for them", () => {
    expect(isAggregateSpecValid(spec("most recent value", { sortColumn: undefined }))).toBe("options.sortColumn: is required for most recent value");
    expect(isAggregateSpecValid(spec("least recent value", { sortColumn: "" }))).toBe("options.sortColumn: is required for least recent value");
    expect(isAggregateSpecValid(spec("sum", { sortColumn: "at" }))).toBe("options.sortColumn: only applies to most recent value and least recent value (method is sum)");
  });

  it("rejects unknown methods, a missing column and arrays of non-exact aggregations", () => {
    expect(isAggregateSpecValid(spec("median" as AggregationMethod))).toBe(
      'options.aggregationMethod: must be one of exact, count, sum, average, min, max, most recent value, least recent value (got "median")',
    );
    expect(isAggregateSpecValid(spec("sum", { column: "" }))).toBe("options.column: is required");
    expect(isAggregateSpecValid(spec("count", { isArray: true }))).toBe("options.aggregationMethod: an array property collects values with exact (got count)");
  });

  it("judges the spec with the property around it as the config validator does", () => {
    const problems = (s: AggregateSpec, property: Parameters<typeof aggregateProblems>[1]) => aggregateProblems(s, property).map((p) => `${p.field.join(".")}: ${p.message}`);
    expect(problems(spec("sum"), { type: "string", unique: false })).toEqual(["options.aggregationMethod: sum needs an integer or float property (type is string)"]);
    expect(problems(spec("count"), { type: "float", unique: false })).toEqual(["options.aggregationMethod: count needs an integer property (type is float)"]);
    expect(problems(spec("max"), { type: "integer", unique: true })).toEqual(["options.aggregationMethod: a unique property must use exact (got max)"]);
    expect(problems(spec("exact", { isArray: true }), { type: "string", unique: true })).toEqual(["isArray: a unique property cannot be an array"]);
    expect(problems(spec("min"), { type: "integer", unique: false, primarySourceId: "users" })).toEqual([
      'options.aggregationMethod: min needs a source with many rows per record; "users" is its model\'s primary source (one row per record)',
    ]);
    expect(problems(spec("sum"), { type: "float", unique: false })).toEqual([]);
  });

  it("checks each filter's operator and match", () => {
    const withFilter = (filter: PropertyFilter): string | null => isAggregateSpecValid(spec("count", { filters: [filter] }));
    expect(withFilter({ key: "f", op: "exists" })).toBeNull();
    expect(withFilter({ key: "f", op: "notExists" })).toBeNull();
    expect(withFilter({ key: "f", op: "eq", match: 0 })).toBeNull();
    expect(withFilter({ key: "f", op: "ne", match: false })).toBeNull();
    expect(withFilter({ key: "f", op: "in", match: ["a", 1, true] })).toBeNull();
    expect(withFilter({ key: "f", op: "in", match: "a,b" })).toBeNull();
    expect(withFilter({ key: "f", op: "eq" })).toBe("filters[0].match: is required for op eq");
    expect(withFilter({ key: "f", op: "gt", match: null })).toBe("filters[0].match: null matches no row with op gt (use exists or notExists)");
    expect(withFilter({ key: "f", op: "lt", match: ["a"] })).toBe("filters[0].match: only op in takes a list (op is lt)");
    expect(withFilter({ key: "f", op: "in", match: 3 })).toBe("filters[0].match: op in needs a list (or a comma-separated string)");
    expect(withFilter({ key: "f", op: "exists", match: 3 })).toBe("filters[0].match: op exists takes no match");
    expect(withFilter({ key: "f", op: "like" as PropertyFilter["op"], match: "a" })).toBe(
      'filters[0].op: must be one of eq, ne, gt, gte, lt, lte, substring, notSubstring, in, exists, notExists (got "like")',
    );
    expect(withFilter({ key: "", op: "exists" })).toBe("filters[0].key: is required");
  });

  it("emptyAggregate refuses an invalid spec", () => {
    expect(() => emptyAggregate(spec("most recent value", { sortColumn: undefined }))).toThrow("options.sortColumn: is required for most recent value");
  });
});

describe("rowPassesFilters", () => {
  it("passes every row when there are no filters, and needs every filter to pass (AND)", () => {
    expect(rowPassesFilters([], {})).toBe(true);
    const both: PropertyFilter[] = [
      { key: "a", op: "eq", match: 1 },
      { key: "b", op: "eq", match: "x" },
    ];
    expect(rowPassesFilters(both, { a: 1, b: "x" })).toBe(true);
    expect(rowPassesFilters(both, { a: 1, b: "y" })).toBe(false);
    expect(rowPassesFilters(both, { a: 2, b: "x" })).toBe(false);
  });

  it("eq / ne compare numbers numerically, dates as epoch ms, booleans as true/false, else text", () => {
    expect(pass({ key: "a", op: "eq", match: 5 }, { a: 5 })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: 5 }, { a: "5.0" })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: "05" }, { a: 5 })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: 5 }, { a: 6 })).toBe(false);
    expect(pass({ key: "a", op: "eq", match: "Paid" }, { a: "paid" })).toBe(false);
    expect(pass({ key: "a", op: "eq", match: "paid" }, { a: "paid" })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: true }, { a: true })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: "true" }, { a: true })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: false }, { a: true })).toBe(false);
    expect(pass({ key: "a", op: "eq", match: "2020-01-01T00:00:00Z" }, { a: new Date("2020-01-01T00:00:00Z") })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: "2020-01-01" }, { a: utc("2020-01-01T00:00:00Z") })).toBe(true);
    expect(pass({ key: "a", op: "eq", match: "2020-01-01T02:00:00+02:00" }, { a: "2020-01-01 00:00:00Z" })).toBe(true);
    expect(pass({ key: "a", op: "ne", match: 5 }, { a: 6 })).toBe(true);
    expect(pass({ key: "a", op: "ne", match: 5 }, { a: 5 })).toBe(false);
    expect(pass({ key: "a", op: "ne", match: "x" }, { a: "y" })).toBe(true);
  });

  it("gt / gte / lt / lte order numbers numerically, dates by instant, text by code units", () => {
    expect(pass({ key: "a", op: "gt", match: 9 }, { a: 10 })).toBe(true);
    expect(pass({ key: "a", op: "gt", match: "9" }, { a: "10" })).toBe(true);
    expect(pass({ key: "a", op: "lt", match: 9 }, { a: 10 })).toBe(false);
    expect(pass({ key: "a", op: "gte", match: 10 }, { a: 10 })).toBe(true);
    expect(pass({ key: "a", op: "lte", match: 10 }, { a: 10 })).toBe(true);
    expect(pass({ key: "a", op: "lt", match: 10 }, { a: 10 })).toBe(false);
    expect(pass({ key: "a", op: "gt", match: 2.5 }, { a: 2.25 })).toBe(false);
    expect(pass({ key: "a", op: "gt", match: "apple" }, { a: "banana" })).toBe(true);
    expect(pass({ key: "a", op: "lt", match: "a" }, { a: "Z" })).toBe(true);
    // 10:00 at +02:00 is 08:00Z, before 09:00Z, although its text sorts after.
    expect(pass({ key: "a", op: "lt", match: "2020-01-01T09:00:00Z" }, { a: "2020-01-01T10:00:00+02:00" })).toBe(true);
    expect(pass({ key: "a", op: "gte", match: "2021-06-01" }, { a: new Date("2021-06-01T00:00:00.000Z") })).toBe(true);
    expect(pass({ key: "a", op: "gt", match: "2021-06-01" }, { a: new Date("2021-05-31T23:59:59.999Z") })).toBe(false);
    expect(pass({ key: "a", op: "lte", match: utc("2021-06-01") }, { a: "2021-06-01" })).toBe(true);
  });

  it("substring / notSubstring are case-sensitive containment of the text", () => {
    expect(pass({ key: "a", op: "substring", match: "ell" }, { a: "hello" })).toBe(true);
    expect(pass({ key: "a", op: "substring", match: "ELL" }, { a: "hello" })).toBe(false);
    expect(pass({ key: "a", op: "notSubstring", match: "ELL" }, { a: "hello" })).toBe(true);
    expect(pass({ key: "a", op: "notSubstring", match: "ell" }, { a: "hello" })).toBe(false);
    expect(pass({ key: "a", op: "substring", match: 23 }, { a: 1234 })).toBe(true);
    expect(pass({ key: "a", op: "substring", match: "" }, { a: "" })).toBe(true);
  });

  it("in takes an array or a comma-separated string, with eq's comparison", () => {
    expect(pass({ key: "a", op: "in", match: ["paid", "shipped"] }, { a: "shipped" })).toBe(true);
    expect(pass({ key: "a", op: "in", match: ["paid", "shipped"] }, { a: "refunded" })).toBe(false);
    expect(pass({ key: "a", op: "in", match: "paid, shipped" }, { a: "shipped" })).toBe(true);
    expect(pass({ key: "a", op: "in", match: "1,2,3" }, { a: 2 })).toBe(true);
    expect(pass({ key: "a", op: "in", match: [1, 2, 3] }, { a: "3" })).toBe(true);
    expect(pass({ key: "a", op: "in", match: [1, 2, 3] }, { a: 4 })).toBe(false);
    expect(pass({ key: "a", op: "in", match: [] }, { a: 1 })).toBe(false);
    // Empty pieces of the text form are dropped; only the array form can ask for "".
    expect(pass({ key: "a", op: "in", match: "" }, { a: "" })).toBe(false);
    expect(pass({ key: "a", op: "in", match: "x,,y" }, { a: "" })).toBe(false);
    expect(pass({ key: "a", op: "in", match: [""] }, { a: "" })).toBe(true);
    expect(pass({ key: "a", op: "in", match: ["2020-01-01"] }, { a: new Date("2020-01-01T00:00:00Z") })).toBe(true);
  });

  it("exists / notExists: null, undefined, a missing column, NaN and an invalid Date are no value; empty text is a value", () => {
    for (const row of [{ a: null }, { a: undefined }, {}, { a: Number.NaN }, { a: new Date(Number.NaN) }] as Row[]) {
      expect(pass({ key: "a", op: "exists" }, row)).toBe(false);
      expect(pass({ key: "a", op: "notExists" }, row)).toBe(true);
    }
    for (const row of [{ a: "" }, { a: 0 }, { a: false }, { a: new Date(0) }] as Row[]) {
      expect(pass({ key: "a", op: "exists" }, row)).toBe(true);
      expect(pass({ key: "a", op: "notExists" }, row)).toBe(false);
    }
  });

  it("SQL null semantics: no other operator passes a null column, not even ne or notSubstring", () => {
    const filters: PropertyFilter[] = [
      { key: "a", op: "eq", match: 1 },
      { key: "a", op: "ne", match: 1 },
      { key: "a", op: "gt", match: 1 },
      { key: "a", op: "gte", match: 1 },
      { key: "a", op: "lt", match: 1 },
      { key: "a", op: "lte", match: 1 },
      { key: "a", op: "substring", match: "x" },
      { key: "a", op: "notSubstring", match: "x" },
      { key: "a", op: "in", match: [1] },
    ];
    for (const filter of filters) {
      expect(pass(filter, { a: null }), filter.op).toBe(false);
      expect(pass(filter, {}), filter.op).toBe(false);
    }
  });

  it("a null or missing match passes nothing (a comparison with NULL)", () => {
    expect(pass({ key: "a", op: "eq", match: null }, { a: 1 })).toBe(false);
    expect(pass({ key: "a", op: "ne" }, { a: 1 })).toBe(false);
  });
});

describe("count", () => {
  it("counts passing rows with a non-null column under inserts, updates and deletes", () => {
    const r = new Record1(spec("count"));
    expect(r.value).toBe(0);
    r.put("a", { v: 1 }).put("b", { v: null }).put("c", { v: "x" }).put("d", { v: false });
    expect(r.value).toBe(3);
    r.put("b", { v: 5 });
    expect(r.value).toBe(4);
    r.put("a", { v: null });
    expect(r.value).toBe(3);
    r.put("a", {}); // column missing: still no value
    expect(r.value).toBe(3);
    r.del("c").del("b").del("d");
    expect(r.value).toBe(0);
    r.del("a");
    expect(r.value).toBe(0);
  });

  it("refuses to go below zero when a delete's old row was never applied", () => {
    const s = spec("count");
    expect(() => applyRowChange(s, emptyAggregate(s), "a", { v: 1 }, null)).toThrow("below zero");
  });
});

describe("sum", () => {
  it("adds numbers and decimal strings, ignoring nulls, text and booleans", () => {
    const r = new Record1(spec("sum"));
    expect(r.value).toBe(0);
    r.put("a", { v: 1 }).put("b", { v: 2.5 }).put("c", { v: " 3 " }).put("d", { v: "abc" }).put("e", { v: null }).put("f", { v: true });
    expect(r.value).toBe(6.5);
    r.put("c", { v: "10" });
    expect(r.value).toBe(13.5);
    r.put("d", { v: "-0.5" });
    expect(r.value).toBe(13);
    r.del("a").del("b");
    expect(r.value).toBe(9.5);
    r.del("c").del("d");
    expect(r.value).toBe(0);
  });

  it("is the correctly rounded exact sum, whatever the order", () => {
    const r = new Record1(spec("sum"));
    r.put("c", { v: 0.3 }).put("a", { v: 0.1 }).put("b", { v: 0.2 });
    // Left-to-right addition would give 0.6000000000000001.
    expect(r.value).toBe(0.6);
    r.del("c");
    expect(r.value).toBe(0.1 + 0.2);
    r.del("b");
    expect(r.value).toBe(0.1);
    const big = new Record1(spec("sum"));
    big.put("a", { v: 1e16 }).put("b", { v: 1 }).put("c", { v: -1e16 });
    expect(big.value).toBe(1);
    big.put("d", { v: 2 ** 53 }).put("e", { v: 2 ** 53 });
    expect(big.value).toBe(2 ** 54 + 1);
  });

  it("sums safe integers beyond 2^53 exactly and overflows only as the true sum does", () => {
    const r = new Record1(spec("sum"));
    r.put("a", { v: Number.MAX_SAFE_INTEGER }).put("b", { v: Number.MAX_SAFE_INTEGER }).put("c", { v: -Number.MAX_SAFE_INTEGER });
    expect(r.value).toBe(Number.MAX_SAFE_INTEGER);
    const huge = new Record1(spec("sum"));
    huge.put("a", { v: Number.MAX_VALUE }).put("b", { v: Number.MAX_VALUE });
    expect(huge.value).toBe(Infinity);
    huge.put("c", { v: -Number.MAX_VALUE });
    expect(huge.value).toBe(Number.MAX_VALUE);
  });

  it("sums Date values as epoch ms", () => {
    const r = new Record1(spec("sum"));
    r.put("a", { v: new Date(1000) }).put("b", { v: 500 });
    expect(r.value).toBe(1500);
  });
});

describe("average", () => {
  it("is sum / count of the numeric values, null over none", () => {
    const r = new Record1(spec("average"));
    expect(r.value).toBeNull();
    r.put("a", { v: 1 }).put("b", { v: 2 }).put("c", { v: "text" }).put("d", { v: null });
    expect(r.value).toBe(1.5);
    r.put("c", { v: "6" });
    expect(r.value).toBe(3);
    r.put("e", { v: 0 });
    expect(r.value).toBe(9 / 4);
    r.put("a", { v: 0 }).put("b", { v: 0 }).put("c", { v: 1 });
    expect(r.value).toBe(1 / 4);
    r.del("a").del("b").del("c").del("e");
    expect(r.value).toBeNull();
  });

  it("is the correctly rounded exact mean", () => {
    const r = new Record1(spec("average"));
    r.put("a", { v: 0.1 }).put("b", { v: 0.2 }).put("c", { v: 0.3 });
    expect(r.value).toBe(0.2);
    r.put("c", { v: 0.7 });
    expect(r.value).toBe(1 / 3);
    const huge = new Record1(spec("average"));
    // The sum overflows a double; the mean does not.
    huge.put("a", { v: 1e308 }).put("b", { v: 1e308 });
    expect(huge.value).toBe(1e308);
  });
});

describe("min / max", () => {
  it("compare numbers numerically and follow updates and deletes", () => {
    const min = new Record1(spec("min"));
    const max = new Record1(spec("max"));
    expect(min.value).toBeNull();
    expect(max.value).toBeNull();
    for (const r of [min, max]) r.put("a", { v: 10 }).put("b", { v: 9 }).put("c", { v: null }).put("d", { v: -2.5 });
    expect(min.value).toBe(-2.5);
    expect(max.value).toBe(10);
    for (const r of [min, max]) r.put("d", { v: 11 });
    expect(min.value).toBe(9);
    expect(max.value).toBe(11);
    for (const r of [min, max]) r.del("b").del("d");
    expect(min.value).toBe(10);
    expect(max.value).toBe(10);
    for (const r of [min, max]) r.del("a");
    expect(min.value).toBeNull();
    expect(max.value).toBeNull();
  });

  it("compare numeric strings as numbers and return the row's own value", () => {
    const min = new Record1(spec("min")).put("a", { v: "10" }).put("b", { v: "9" });
    expect(min.value).toBe("9");
    const max = new Record1(spec("max")).put("a", { v: "10" }).put("b", { v: 9 });
    expect(max.value).toBe("10");
  });

  it("compare Dates and date strings by instant; Dates come back as epoch ms", () => {
    const min = new Record1(spec("min"));
    const max = new Record1(spec("max"));
    for (const r of [min, max]) {
      r.put("a", { v: "2020-01-01T10:00:00+02:00" }).put("b", { v: "2020-01-01T09:00:00Z" }).put("c", { v: new Date("2020-01-01T08:30:00Z") });
    }
    expect(min.value).toBe("2020-01-01T10:00:00+02:00");
    expect(max.value).toBe("2020-01-01T09:00:00Z");
    for (const r of [min, max]) r.put("c", { v: new Date("2021-01-01T00:00:00Z") });
    expect(max.value).toBe(utc("2021-01-01T00:00:00Z"));
  });

  it("compare text by code units; numbers sort before text; booleans as true / false", () => {
    expect(new Record1(spec("min")).put("a", { v: "banana" }).put("b", { v: "Apple" }).value).toBe("Apple");
    expect(new Record1(spec("max")).put("a", { v: "banana" }).put("b", { v: "apple" }).value).toBe("banana");
    expect(new Record1(spec("min")).put("a", { v: "apple" }).put("b", { v: 5 }).value).toBe(5);
    expect(new Record1(spec("max")).put("a", { v: "apple" }).put("b", { v: 5 }).value).toBe("apple");
    expect(new Record1(spec("max")).put("a", { v: false }).put("b", { v: true }).value).toBe(true);
    expect(new Record1(spec("min")).put("a", { v: false }).put("b", { v: true }).value).toBe(false);
  });

  it("ties keep the smallest rowKey's value", () => {
    expect(new Record1(spec("min")).put("b", { v: 5 }).put("a", { v: "5" }).value).toBe("5");
    expect(new Record1(spec("max")).put("a", { v: 5 }).put("b", { v: "5.0" }).value).toBe(5);
  });
});

describe("most recent value / least recent value", () => {
  it("take the value of the row with the greatest / smallest Date sort column", () => {
    const most = new Record1(spec("most recent value"));
    const least = new Record1(spec("least recent value"));
    expect(most.value).toBeNull();
    expect(least.value).toBeNull();
    for (const r of [most, least]) {
      r.put("a", { v: "first", at: new Date("2020-01-01T00:00:00Z") })
        .put("b", { v: "second", at: new Date("2020-02-01T00:00:00Z") })
        .put("c", { v: "third", at: new Date("2020-03-01T00:00:00Z") });
    }
    expect(most.value).toBe("third");
    expect(least.value).toBe("first");
    // Moving the sort column moves the winner.
    for (const r of [most, least]) r.put("a", { v: "first", at: new Date("2020-04-01T00:00:00Z") });
    expect(most.value).toBe("first");
    expect(least.value).toBe("second");
    // Changing only the value keeps the winner's row.
    for (const r of [most, least]) r.put("b", { v: "second!", at: new Date("2020-02-01T00:00:00Z") });
    expect(least.value).toBe("second!");
    for (const r of [most, least]) r.del("a").del("b");
    expect(most.value).toBe("third");
    expect(least.value).toBe("third");
    for (const r of [most, least]) r.del("c");
    expect(most.value).toBeNull();
    expect(least.value).toBeNull();
  });

  it("mix Dates, epoch ms and date strings by instant", () => {
    const most = new Record1(spec("most recent value"))
      .put("a", { v: 1, at: new Date("2020-01-01T00:00:00Z") })
      .put("b", { v: 2, at: utc("2020-01-02T00:00:00Z") })
      .put("c", { v: 3, at: "2020-01-01T12:00:00-13:00" });
    // 12:00 at -13:00 is 01:00Z on Jan 2, after b.
    expect(most.value).toBe(3);
    const least = new Record1(spec("least recent value")).put("a", { v: 1, at: "2020-01-03" }).put("b", { v: 2, at: new Date("2020-01-02T23:59:59.999Z") });
    expect(least.value).toBe(2);
  });

  it("ignore rows with a null sort column or a null value", () => {
    const most = new Record1(spec("most recent value"))
      .put("a", { v: "old", at: 1 })
      .put("b", { v: "undated", at: null })
      .put("c", { v: null, at: 9 })
      .put("d", { v: "no column" });
    expect(most.value).toBe("old");
    most.put("b", { v: "undated", at: 5 });
    expect(most.value).toBe("undated");
  });

  it("break ties by the greatest / smallest rowKey", () => {
    const at = new Date("2020-01-01T00:00:00Z");
    const most = new Record1(spec("most recent value"));
    const least = new Record1(spec("least recent value"));
    for (const r of [most, least]) r.put("b", { v: "b", at }).put("c", { v: "c", at: at.getTime() }).put("a", { v: "a", at: "2020-01-01T00:00:00Z" });
    expect(most.value).toBe("c");
    expect(least.value).toBe("a");
    for (const r of [most, least]) r.del("c").del("a");
    expect(most.value).toBe("b");
    expect(least.value).toBe("b");
  });

  it("compare numeric sort columns numerically and text sort columns as text", () => {
    expect(new Record1(spec("most recent value")).put("a", { v: "ten", at: 10 }).put("b", { v: "nine", at: "9" }).value).toBe("ten");
    expect(new Record1(spec("most recent value")).put("a", { v: "x", at: "beta" }).put("b", { v: "y", at: "alpha" }).value).toBe("x");
  });
});

describe("exact", () => {
  it("is the value of the smallest rowKey (string order) with a value", () => {
    const r = new Record1(spec("exact"));
    expect(r.value).toBeNull();
    r.put("9", { v: "nine" }).put("10", { v: "ten" });
    expect(r.value).toBe("ten"); // "10" < "9" as strings
    r.put("0", { v: null });
    expect(r.value).toBe("ten");
    r.put("0", { v: new Date(5) });
    expect(r.value).toBe(5);
    r.del("0").del("10");
    expect(r.value).toBe("nine");
    r.put("9", { v: false });
    expect(r.value).toBe(false);
    r.del("9");
    expect(r.value).toBeNull();
  });

  it("with isArray collects every value in rowKey order", () => {
    const r = new Record1(spec("exact", { isArray: true }));
    expect(r.value).toStrictEqual([]);
    r.put("c", { v: 3 }).put("a", { v: "one" }).put("b", { v: null }).put("d", { v: 3 });
    expect(r.value).toStrictEqual(["one", 3, 3]);
    r.put("b", { v: true });
    expect(r.value).toStrictEqual(["one", true, 3, 3]);
    r.put("a", { v: 1.5 });
    expect(r.value).toStrictEqual([1.5, true, 3, 3]);
    r.del("c").del("a");
    expect(r.value).toStrictEqual([true, 3]);
    r.del("b").del("d");
    expect(r.value).toStrictEqual([]);
  });

  it("replaces by rowKey, so a redelivered insert changes nothing", () => {
    const s = spec("exact", { isArray: true });
    let state = emptyAggregate(s);
    state = applyRowChange(s, state, "a", null, { v: 1 });
    state = applyRowChange(s, state, "a", null, { v: 1 });
    expect(aggregateValue(s, state)).toStrictEqual([1]);
  });
});

describe("filters on aggregations", () => {
  const paid: PropertyFilter[] = [{ key: "status", op: "eq", match: "paid" }];
  const expected: Record<AggregationMethod, readonly [PropertyValue | PropertyValue[], PropertyValue | PropertyValue[], PropertyValue | PropertyValue[]]> = {
    // [a and c paid, b moved in, a moved out]
    count: [2, 3, 2],
    sum: [40, 60, 50],
    average: [20, 20, 25],
    min: [10, 10, 20],
    max: [30, 30, 30],
    "most recent value": [30, 20, 20],
    "least recent value": [10, 10, 30],
    exact: [10, 10, 20],
  };

  for (const method of AGGREGATION_METHODS) {
    it(`${method}: an update moves a row into and out of the filter`, () => {
      const r = new Record1(spec(method, { filters: paid }));
      r.put("a", { v: 10, at: 1, status: "paid" })
        .put("b", { v: 20, at: 9, status: "pending" })
        .put("c", { v: 30, at: 5, status: "paid" });
      expect(r.value).toStrictEqual(expected[method][0]);
      r.put("b", { v: 20, at: 9, status: "paid" });
      expect(r.value).toStrictEqual(expected[method][1]);
      r.put("a", { v: 10, at: 1, status: "refunded" });
      expect(r.value).toStrictEqual(expected[method][2]);
      r.put("b", { v: 20, at: 9, status: null }).put("c", { v: 30, at: 5 }).del("a");
      expect(r.value).toStrictEqual(method === "count" || method === "sum" ? 0 : null);
    });
  }

  it("an update can change the filter column and the value at once", () => {
    const r = new Record1(spec("sum", { filters: [{ key: "amount", op: "gte", match: 100 }], column: "amount" }));
    r.put("a", { amount: 50 }).put("b", { amount: 150 });
    expect(r.value).toBe(150);
    r.put("a", { amount: 120 });
    expect(r.value).toBe(270);
    r.put("b", { amount: 99.5 });
    expect(r.value).toBe(120);
  });

  it("exact isArray with a date range filter", () => {
    const r = new Record1(spec("exact", { isArray: true, filters: [{ key: "at", op: "gte", match: "2020-06-01" }] }));
    r.put("a", { v: "old", at: new Date("2020-01-01T00:00:00Z") })
      .put("b", { v: "new", at: new Date("2020-07-01T00:00:00Z") })
      .put("c", { v: "newer", at: "2020-08-01" });
    expect(r.value).toStrictEqual(["new", "newer"]);
  });
});

describe("rows moving between records", () => {
  it("is a delete on the old record's state and an insert on the new one's", () => {
    for (const method of AGGREGATION_METHODS) {
      const s = spec(method);
      let userA = emptyAggregate(s);
      let userB = emptyAggregate(s);
      const rowsOfA = new Map<string, Row>([["p1", { v: 10, at: 1 }]]);
      userA = applyRowChange(s, userA, "p1", null, { v: 10, at: 1 });
      userA = applyRowChange(s, userA, "p2", null, { v: 20, at: 2 });
      userB = applyRowChange(s, userB, "p3", null, { v: 30, at: 3 });
      // p2 moves from A to B and changes its value on the way (A's other rows: p1).
      userA = applyRowChange(s, userA, "p2", { v: 20, at: 2 }, null, () => rowsOfA);
      userB = applyRowChange(s, userB, "p2", null, { v: 25, at: 4 });
      expect(aggregateValue(s, userA), method).toStrictEqual(aggregateFromScratch(s, new Map([["p1", { v: 10, at: 1 }]])));
      expect(aggregateValue(s, userB), method).toStrictEqual(
        aggregateFromScratch(
          s,
          new Map([
            ["p3", { v: 30, at: 3 }],
            ["p2", { v: 25, at: 4 }],
          ]),
        ),
      );
    }
    const s = spec("sum");
    const a = applyRowChange(s, applyRowChange(s, emptyAggregate(s), "p1", null, { v: 10 }), "p1", { v: 10 }, null);
    const b = applyRowChange(s, emptyAggregate(s), "p1", null, { v: 10 });
    expect([aggregateValue(s, a), aggregateValue(s, b)]).toStrictEqual([0, 10]);
  });
});

/** True when x holds only what msgpack and JSON both carry unchanged. */
function isPlainData(x: unknown): boolean {
  if (x === null || typeof x === "string" || typeof x === "boolean") return true;
  if (typeof x === "number") return Number.isFinite(x) && !Object.is(x, -0);
  if (Array.isArray(x)) return x.every(isPlainData);
  if (typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) return Object.values(x).every(isPlainData);
  return false;
}

describe("state", () => {
  const rows: [string, Row][] = [
    ["a", { v: 0.1, at: new Date("2020-01-01T00:00:00Z") }],
    ["b", { v: new Date("2021-01-01T00:00:00Z"), at: "2020-02-01" }],
    ["c", { v: "3", at: 7 }],
    ["d", { v: -0, at: new Date(0) }],
    ["e", { v: 10n, at: 1 }],
  ];

  for (const method of AGGREGATION_METHODS) {
    for (const isArray of method === "exact" ? [false, true] : [false]) {
      it(`${method}${isArray ? " (isArray)" : ""}: plain data that works the same after a JSON round trip`, () => {
        const s = spec(method, { isArray });
        let state = emptyAggregate(s);
        for (const [rowKey, row] of rows) state = applyRowChange(s, state, rowKey, null, row);
        const now = new Map<string, Row>(rows);
        now.set("a", { v: 0.2, at: 99 });
        const others = () => now;
        expect(isPlainData(state)).toBe(true);
        let copy = JSON.parse(JSON.stringify(state)) as AggregateState;
        expect(copy).toStrictEqual(state);
        expect(aggregateValue(s, copy)).toStrictEqual(aggregateValue(s, state));
        // Both keep working: the same changes give the same states.
        state = applyRowChange(s, state, "a", rows[0]![1], { v: 0.2, at: 99 }, others);
        copy = applyRowChange(s, copy, "a", rows[0]![1], { v: 0.2, at: 99 }, others);
        state = applyRowChange(s, state, "c", rows[2]![1], null, others);
        copy = applyRowChange(s, copy, "c", rows[2]![1], null, others);
        expect(copy).toStrictEqual(state);
        expect(aggregateValue(s, copy)).toStrictEqual(aggregateFromScratch(s, new Map([rows[1]!, rows[3]!, rows[4]!, ["a", { v: 0.2, at: 99 }]])));
      });
    }
  }

  it("applyRowChange mutates and returns the given state", () => {
    const s = spec("exact", { isArray: true });
    const state = emptyAggregate(s);
    expect(applyRowChange(s, state, "a", null, { v: 1 })).toBe(state);
    expect(aggregateValue(s, state)).toStrictEqual([1]);
  });

  it("refuses a state of another method's kind", () => {
    const state = emptyAggregate(spec("count"));
    expect(() => aggregateValue(spec("sum"), state)).toThrow('Aggregate state of kind "count" does not belong to method "sum"');
    expect(() => applyRowChange(spec("max"), state, "a", null, { v: 1 })).toThrow("does not belong");
    // sum and average share states; a keyed state holds the row its own method chose, so it is its own.
    const sum = applyRowChange(spec("sum"), emptyAggregate(spec("sum")), "a", null, { v: 3 });
    expect(aggregateValue(spec("average"), sum)).toBe(3);
    const max = applyRowChange(spec("max"), emptyAggregate(spec("max")), "a", null, { v: 3 });
    expect(() => aggregateValue(spec("min"), max)).toThrow('Aggregate state of kind "keyed (max)" does not belong to method "min"');
  });

  it("keeps only the chosen row of min, max and most / least recent value, and asks for the others when it leaves", () => {
    const s = spec("max");
    let state = emptyAggregate(s);
    const rows = new Map<string, Row>();
    for (let i = 0; i < 100; i += 1) {
      rows.set(`r${i}`, { v: i % 37 });
      state = applyRowChange(s, state, `r${i}`, null, { v: i % 37 });
    }
    expect(state).toStrictEqual({ kind: "keyed", method: "max", best: ["r36", 36, 36] });
    expect(() => applyRowChange(s, state, "r36", { v: 36 }, null)).toThrow('The max aggregate lost its chosen row "r36" and needs the record\'s other rows to choose again');
    rows.delete("r36");
    state = applyRowChange(s, state, "r36", { v: 36 }, null, () => rows);
    expect(state).toStrictEqual({ kind: "keyed", method: "max", best: ["r73", 36, 36] });
    // A row that is not the chosen one leaves without reading the others.
    state = applyRowChange(s, state, "r5", { v: 5 }, null, () => {
      throw new Error("not read");
    });
    expect(aggregateValue(s, state)).toBe(36);
  });

  it("is canonical: the same rows give the same state whatever the history", () => {
    const s = spec("sum");
    const direct = applyRowChange(s, emptyAggregate(s), "a", null, { v: 0.5 });
    let detour = emptyAggregate(s);
    detour = applyRowChange(s, detour, "z", null, { v: 1e-300 });
    detour = applyRowChange(s, detour, "a", null, { v: 0.5 });
    detour = applyRowChange(s, detour, "z", { v: 1e-300 }, null);
    expect(detour).toStrictEqual(direct);
  });
});
