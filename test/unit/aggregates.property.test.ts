// Aggregations, properties over random inputs: any sequence of row inserts, updates and deletes (with
// random filters, values mixing integers, floats, nulls, text and dates, and JSON round trips of the
// state in between) leaves the incremental value === the from-scratch definition after every step and
// the state canonical; rows moving between two records keep both right; the from-scratch definition
// agrees with naive oracles (Shewchuk's exact float sum, Math.min/max, sorting); filter operators are the
// exact complements of their negations.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  aggregateFromScratch,
  aggregateValue,
  applyRowChange,
  emptyAggregate,
  rowPassesFilters,
  type AggregateSpec,
  type AggregateState,
  type PropertyFilter,
  type Row,
} from "../../core/aggregates.js";
import { AGGREGATION_METHODS, FILTER_OPERATORS, SORTED_AGGREGATIONS } from "../../core/vocabulary.js";
import type { AggregationMethod, FilterOperator, PropertyValue } from "../../core/vocabulary.js";

const RUNS = { numRuns: 300 };

// A small key space so updates and deletes hit existing rows; "10" and "9" sort against their numbers.
const rowKey = fc.constantFrom("a", "b", "c", "d", "10", "9");

const value = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.integer(),
  fc.double(), // includes NaN, ±Infinity and -0, which count as null / 0
  fc.double({ min: -1000, max: 1000, noNaN: true }),
  fc.constantFrom(0.1, 0.2, 0.3, 1e16, -1e16, 2 ** 53, 5e-324, 1e308, -1e308, Number.MAX_SAFE_INTEGER),
  fc.constant(null),
  fc.constant(undefined),
  fc.constantFrom("1.5", "-2", " 3 ", "abc", "x", "2020-01-01", "10", "9", "true", ""),
  fc.boolean(),
  fc.date({ min: new Date(0), max: new Date(5) }),
);

// Sort columns tie often: Date(3), 3 and "1970-01-01T00:00:00.003Z" are the same instant.
const sortValue = fc.oneof(
  fc.integer({ min: 0, max: 4 }),
  fc.integer({ min: 0, max: 4 }).map((n) => new Date(n)),
  fc.integer({ min: 0, max: 4 }).map((n) => new Date(n).toISOString()),
  fc.constant(null),
  fc.constantFrom("x", "y"),
);

const filterValue = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.constantFrom("a", "b", "ab", "2", "", null),
  fc.integer({ min: 0, max: 3 }).map((n) => new Date(n)),
);

const row = fc.record({ v: value, at: sortValue, f: filterValue });

const matchScalar = fc.constantFrom<string | number | boolean>(0, 1, 2, 3, "a", "b", "2", true, "1970-01-01T00:00:00.002Z");
const filter: fc.Arbitrary<PropertyFilter> = fc
  .record({
    key: fc.constantFrom("f", "f", "v", "at"),
    op: fc.constantFrom(...FILTER_OPERATORS),
    scalar: matchScalar,
    list: fc.array(matchScalar, { maxLength: 3 }),
    listAsText: fc.boolean(),
  })
  .map(({ key, op, scalar, list, listAsText }) => {
    if (op === "exists" || op === "notExists") return { key, op };
    if (op === "in") return { key, op, match: listAsText ? list.map(String).join(", ") : list };
    return { key, op, match: scalar };
  });

const aggregateSpec: fc.Arbitrary<AggregateSpec> = fc
  .record({
    method: fc.constantFrom(...AGGREGATION_METHODS),
    isArray: fc.boolean(),
    filters: fc.oneof(fc.constant([]), fc.array(filter, { maxLength: 2 })),
  })
  .map(({ method, isArray, filters }) => ({ method, column: "v", ...(SORTED_AGGREGATIONS.includes(method) ? { sortColumn: "at" } : {}), filters, isArray: method === "exact" && isArray }));

type Op = { kind: "put"; key: string; row: Row } | { kind: "del"; key: string } | { kind: "roundtrip" };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("put" as const), key: rowKey, row }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("del" as const), key: rowKey }) },
  { weight: 1, arbitrary: fc.constant({ kind: "roundtrip" as const }) },
);

/** The state a set of rows gives when inserted into a fresh state in the given order. */
function build(spec: AggregateSpec, rows: Iterable<readonly [string, Row]>): AggregateState {
  let state = emptyAggregate(spec);
  for (const [key, r] of rows) state = applyRowChange(spec, state, key, null, r);
  return state;
}

describe("incremental aggregates equal the from-scratch definition", () => {
  it("after every insert, update and delete, for every method and random filters", () => {
    fc.assert(
      fc.property(aggregateSpec, fc.array(op, { maxLength: 40 }), (spec, ops) => {
        const rows = new Map<string, Row>();
        let state = emptyAggregate(spec);
        for (const o of ops) {
          if (o.kind === "roundtrip") {
            state = JSON.parse(JSON.stringify(state)) as AggregateState;
          } else if (o.kind === "put") {
            state = applyRowChange(spec, state, o.key, rows.get(o.key) ?? null, o.row, () => rows);
            rows.set(o.key, o.row);
          } else {
            // Deleting an absent row is a change with neither side: a no-op.
            state = applyRowChange(spec, state, o.key, rows.get(o.key) ?? null, null, () => rows);
            rows.delete(o.key);
          }
          expect(aggregateValue(spec, state)).toStrictEqual(aggregateFromScratch(spec, rows));
        }
        // Canonical: the history leaves no trace, whatever the insertion order.
        expect(state).toStrictEqual(build(spec, [...rows].reverse()));
        expect(JSON.parse(JSON.stringify(state))).toStrictEqual(state);
      }),
      RUNS,
    );
  });

  it("with rows moving between two records (a delete on one, an insert on the other)", () => {
    const owner = fc.constantFrom("A", "B");
    type MoveOp = { kind: "put"; key: string; row: Row; owner: string } | { kind: "del"; key: string };
    const moveOp: fc.Arbitrary<MoveOp> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant("put" as const), key: rowKey, row, owner }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("del" as const), key: rowKey }) },
    );
    fc.assert(
      fc.property(aggregateSpec, fc.array(moveOp, { maxLength: 40 }), (spec, ops) => {
        const table = new Map<string, { owner: string; row: Row }>();
        const states: Record<string, AggregateState> = { A: emptyAggregate(spec), B: emptyAggregate(spec) };
        // A record's rows as its row store holds them (the changing row still at its old value).
        const rowsOf = (who: string) => () => [...table].filter(([, t]) => t.owner === who).map(([k, t]) => [k, t.row] as const);
        for (const o of ops) {
          const old = table.get(o.key);
          if (o.kind === "del") {
            if (old === undefined) continue;
            states[old.owner] = applyRowChange(spec, states[old.owner]!, o.key, old.row, null, rowsOf(old.owner));
            table.delete(o.key);
          } else if (old === undefined || old.owner === o.owner) {
            states[o.owner] = applyRowChange(spec, states[o.owner]!, o.key, old?.row ?? null, o.row, rowsOf(o.owner));
            table.set(o.key, { owner: o.owner, row: o.row });
          } else {
            states[old.owner] = applyRowChange(spec, states[old.owner]!, o.key, old.row, null, rowsOf(old.owner));
            states[o.owner] = applyRowChange(spec, states[o.owner]!, o.key, null, o.row);
            table.set(o.key, { owner: o.owner, row: o.row });
          }
          for (const who of ["A", "B"]) {
            const mine = new Map([...table].filter(([, t]) => t.owner === who).map(([k, t]) => [k, t.row] as const));
            expect(aggregateValue(spec, states[who]!)).toStrictEqual(aggregateFromScratch(spec, mine));
          }
        }
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Oracles for the definition itself, over plain numbers.

/** Shewchuk's exact summation with Python's correctly rounded final step (math.fsum), for finite inputs
 * whose partial sums do not overflow. */
function fsum(xs: readonly number[]): number {
  const partials: number[] = [];
  for (let x of xs) {
    let i = 0;
    for (let j = 0; j < partials.length; j++) {
      let y = partials[j]!;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    partials.push(x);
  }
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n]!;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n]!;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  if (n > 0 && ((lo < 0 && partials[n - 1]! < 0) || (lo > 0 && partials[n - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi;
}

const specOf = (method: AggregationMethod, isArray = false): AggregateSpec => ({ method, column: "v", ...(SORTED_AGGREGATIONS.includes(method) ? { sortColumn: "at" } : {}), filters: [], isArray });
const rowsOf = (xs: readonly (number | null)[], at: readonly number[] = []): Map<string, Row> =>
  new Map(xs.map((x, i) => [`k${String(i).padStart(3, "0")}`, { v: x, at: at[i] ?? 0 }] as const));
const noNegZero = (x: number): number => x + 0;

describe("the from-scratch definition agrees with naive oracles", () => {
  const moderate = fc.oneof(
    fc.double({ min: -1e300, max: 1e300, noNaN: true }),
    fc.double({ min: -1e-300, max: 1e-300, noNaN: true }),
    fc.integer({ min: -1000, max: 1000 }),
    fc.constantFrom(0.1, 0.2, 0.3, 1e16, -1e16, 1, -1),
  );

  it("sum is the correctly rounded exact sum (Shewchuk's fsum)", () => {
    fc.assert(
      fc.property(fc.array(moderate, { maxLength: 12 }), (xs) => {
        expect(aggregateFromScratch(specOf("sum"), rowsOf(xs))).toBe(noNegZero(fsum(xs)));
      }),
      { numRuns: 1000 },
    );
  });

  it("sum of two doubles is IEEE addition, overflow included", () => {
    const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
    fc.assert(
      fc.property(finite, finite, (a, b) => {
        expect(aggregateFromScratch(specOf("sum"), rowsOf([a, b]))).toBe(noNegZero(a + b));
      }),
      { numRuns: 1000 },
    );
  });

  it("sum and average of safe integers are the integer sum and the IEEE quotient", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer(), fc.constant(null)), { maxLength: 12 }), (xs) => {
        const ints = xs.filter((x): x is number => x !== null);
        const total = ints.reduce((s, x) => s + x, 0);
        expect(aggregateFromScratch(specOf("sum"), rowsOf(xs))).toBe(total);
        expect(aggregateFromScratch(specOf("average"), rowsOf(xs))).toBe(ints.length === 0 ? null : noNegZero(total / ints.length));
        expect(aggregateFromScratch(specOf("count"), rowsOf(xs))).toBe(ints.length);
      }),
    );
  });

  it("average of copies of one double is that double", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: 1, max: 7 }), (x, k) => {
        expect(aggregateFromScratch(specOf("average"), rowsOf(Array<number>(k).fill(x)))).toBe(noNegZero(x));
      }),
      { numRuns: 1000 },
    );
  });

  it("min, max, most / least recent and exact agree with sorting", () => {
    const num = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.double({ min: -100, max: 100, noNaN: true }), fc.constant(null));
    fc.assert(
      fc.property(fc.array(fc.tuple(num, fc.integer({ min: 0, max: 3 })), { maxLength: 10 }), (pairs) => {
        const xs = pairs.map(([x]) => (x === null ? null : noNegZero(x)));
        const at = pairs.map(([, t]) => t);
        const rows = rowsOf(xs, at);
        // rowsOf's keys are in index order, so index order is rowKey order.
        const present = xs.flatMap((x, i) => (x === null ? [] : [{ x, t: at[i]!, i }]));
        const values = present.map((p) => p.x);
        expect(aggregateFromScratch(specOf("min"), rows)).toBe(values.length === 0 ? null : Math.min(...values));
        expect(aggregateFromScratch(specOf("max"), rows)).toBe(values.length === 0 ? null : Math.max(...values));
        expect(aggregateFromScratch(specOf("exact"), rows)).toBe(values[0] ?? null);
        expect(aggregateFromScratch(specOf("exact", true), rows)).toStrictEqual(values);
        const byRecent = [...present].sort((p, q) => p.t - q.t || p.i - q.i);
        expect(aggregateFromScratch(specOf("most recent value"), rows)).toBe(byRecent.at(-1)?.x ?? null);
        expect(aggregateFromScratch(specOf("least recent value"), rows)).toBe(byRecent[0]?.x ?? null);
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Filters

const NEGATIONS: readonly (readonly [FilterOperator, FilterOperator])[] = [
  ["eq", "ne"],
  ["gt", "lte"],
  ["lt", "gte"],
  ["substring", "notSubstring"],
];

describe("filters", () => {
  const anyRow = fc.record({ f: fc.oneof(value, filterValue) });

  it("each operator and its negation split the non-null rows exactly; null passes neither", () => {
    fc.assert(
      fc.property(anyRow, matchScalar, fc.constantFrom(...NEGATIONS), (r, match, [positive, negative]) => {
        const p = rowPassesFilters([{ key: "f", op: positive, match }], r);
        const n = rowPassesFilters([{ key: "f", op: negative, match }], r);
        const exists = rowPassesFilters([{ key: "f", op: "exists" }], r);
        expect(exists).toBe(!rowPassesFilters([{ key: "f", op: "notExists" }], r));
        if (exists) expect(p).toBe(!n);
        else expect([p, n]).toStrictEqual([false, false]);
      }),
      { numRuns: 1000 },
    );
  });

  it("in is eq against any item, as an array or as comma-separated text (whose empty pieces are dropped)", () => {
    const item = fc.constantFrom<string | number>(0, 1, 2, 3, "a", "b", "2", "1970-01-01T00:00:00.002Z");
    fc.assert(
      fc.property(anyRow, fc.array(item, { maxLength: 3 }), (r, items) => {
        const expected = items.some((m) => rowPassesFilters([{ key: "f", op: "eq", match: m }], r));
        expect(rowPassesFilters([{ key: "f", op: "in", match: items }], r)).toBe(expected);
        expect(rowPassesFilters([{ key: "f", op: "in", match: items.map(String).join(" , ") }], r)).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it("several filters pass exactly when each passes", () => {
    fc.assert(
      fc.property(fc.array(filter, { maxLength: 3 }), row, (filters, r) => {
        expect(rowPassesFilters(filters, r)).toBe(filters.every((f) => rowPassesFilters([f], r)));
      }),
      { numRuns: 1000 },
    );
  });

  it("the order is total: gt, eq and lt are exclusive and exhaustive on non-null values", () => {
    fc.assert(
      fc.property(anyRow, matchScalar, (r, match) => {
        fc.pre(rowPassesFilters([{ key: "f", op: "exists" }], r));
        const results: PropertyValue[] = (["gt", "eq", "lt"] as const).map((o) => rowPassesFilters([{ key: "f", op: o, match }], r));
        expect(results.filter(Boolean)).toHaveLength(1);
      }),
      { numRuns: 1000 },
    );
  });
});
