// Aggregations over a secondary source's many rows per record (ARCHITECTURE.md, "Domain semantics"): the row filters,
// the from-scratch definition of every aggregation method, and the small serialisable state that
// maintains one (property, record) aggregate incrementally under row inserts, updates and deletes.
// Pure: no I/O, no clock. The caller stores the state (LMDB + msgpack) and routes each row change to
// the record(s) it belongs to.
//
// State representation (plain objects, arrays, numbers, strings; no Map/Set/bigint/undefined):
//   count                    { kind: "count", n }: O(1) per change, trusts `before`.
//   sum, average             { kind: "sum", n, m, e }: the EXACT sum of the n numeric values, m·2^e with m
//                            a decimal bigint string. O(1) per change (bigint of at most ~2100 bits), and
//                            exact for floats too: the reported sum is the correctly rounded true sum, so it
//                            cannot depend on the order the rows were added or removed in. This is what
//                            makes the incremental value === the from-scratch value without keeping each
//                            row's contribution. Trusts `before`.
//   exact                    { kind: "values", rows: [rowKey, value][] } sorted by rowKey: O(log n) search +
//                            O(n) splice per change (an isArray property's value holds every row's value
//                            anyway). It replaces by rowKey, so it does not depend on `before`.
//   min, max, most/least     { kind: "keyed", best: [rowKey, value, sortKey] | null }: only the chosen row,
//   recent value             so the state does not grow with the rows. O(1) per change, except when the
//                            chosen row leaves or gets worse: then the record's other rows (`others`, which
//                            the caller reads from its row store) compete again, O(n) once. It does not
//                            depend on `before` either, so a redelivered change is harmless.
// Every state is canonical: the same set of rows gives a deep-equal state whatever the history.

import { compareStrings, normalizeValue } from "./values.js";
import { AGGREGATION_METHODS, FILTER_OPERATORS, SORTED_AGGREGATIONS } from "./vocabulary.js";
import type { AggregationMethod, FilterOperator, PropertyScalar, PropertyType, PropertyValue } from "./vocabulary.js";

export interface PropertyFilter {
  key: string;
  op: FilterOperator;
  match?: string | number | boolean | null | readonly (string | number | boolean)[];
}

export interface AggregateSpec {
  method: AggregationMethod;
  /** the row column aggregated */
  column: string;
  /** required for "most recent value" / "least recent value" */
  sortColumn?: string;
  filters: readonly PropertyFilter[];
  /** with "exact": collect the values of all rows */
  isArray: boolean;
}

/** One source row as column → raw value (already decoded from the source: numbers, strings, booleans, null, Date or epoch-ms numbers for timestamps). */
export type Row = Readonly<Record<string, unknown>>;

/** A comparison key: numbers (incl. numeric strings and dates as epoch ms) sort before strings. */
type Key = number | string;

interface CountState {
  /** The hash of the spec that built it (aggregateHash; stamped by the caller, which rebuilds a state of another spec). */
  g?: string;
  kind: "count";
  /** passing rows with a non-null column value */
  n: number;
}
interface SumState {
  /** The hash of the spec that built it (aggregateHash; stamped by the caller, which rebuilds a state of another spec). */
  g?: string;
  kind: "sum";
  /** passing rows with a numeric column value */
  n: number;
  /** the exact sum is m·2^e; m is a decimal integer string, odd unless it is "0" (then e is 0) */
  m: string;
  e: number;
}
interface ValuesState {
  /** The hash of the spec that built it (aggregateHash; stamped by the caller, which rebuilds a state of another spec). */
  g?: string;
  kind: "values";
  /** [rowKey, value], sorted by rowKey, non-null values only */
  rows: [string, PropertyScalar][];
}
interface KeyedState {
  /** The hash of the spec that built it (aggregateHash; stamped by the caller, which rebuilds a state of another spec). */
  g?: string;
  kind: "keyed";
  /** The method that chose `best` (unlike the other kinds, the state is not shared between methods). */
  method: AggregationMethod;
  /** The chosen row as [rowKey, value, key] (see `beats`), or null when no row contributes; key orders the
   * rows (the value's for min/max, the sort column's for most/least recent). */
  best: [string, PropertyScalar, Key] | null;
}

/** The record's rows of the aggregated source other than the changing one, as they are now. */
export type OtherRows = () => Iterable<readonly [string, Row]>;
export type AggregateState = CountState | SumState | ValuesState | KeyedState;

// ---------------------------------------------------------------------------------------------------
// Scalars, numbers, keys

/**
 * A raw row value as a stored scalar, or null for "no value". Dates become epoch ms so the state stays
 * serialisable; non-finite numbers (NaN, ±Infinity) and invalid Dates are null, since neither JSON nor an
 * ordering can carry them; -0 is 0 (msgpack and JSON would turn it into 0 anyway); a bigint is a number
 * when safe, else its decimal text; other objects (arrays, JSON, buffers) are not scalars and count as null.
 */
function scalar(raw: unknown): PropertyValue {
  switch (typeof raw) {
    case "string":
    case "boolean":
      return raw;
    case "number":
      return Number.isFinite(raw) ? (raw === 0 ? 0 : raw) : null;
    case "bigint":
      return raw >= BigInt(Number.MIN_SAFE_INTEGER) && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : String(raw);
    case "object":
      if (raw instanceof Date) return scalar(raw.getTime());
      return null;
    default:
      return null;
  }
}

/** Whether a text's first character (after blanks) can start a decimal number or a date. */
function startsNumberOrDate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13)) continue;
    // Other Unicode blanks (which trim() also removes) go the full way.
    return (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46 || c > 127;
  }
  return false;
}

/** A number, or a decimal string (the float property type's parser); else null. Booleans are not numbers. */
function numeric(v: PropertyScalar): number | null {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return null;
  const parsed = normalizeValue("float", v).value;
  return typeof parsed === "number" ? parsed : null;
}

/**
 * The ordering key of a scalar: numbers and numeric strings as numbers, ISO-8601 / Postgres date strings
 * (the date property type's parser, so always UTC-deterministic) as epoch ms, booleans and other strings
 * as text. Numeric comes before date so "2020" is the number 2020, not a year.
 */
function keyOf(v: PropertyScalar): Key {
  if (typeof v === "boolean") return v ? "true" : "false";
  // Text that cannot start a number or a date ("paid", "sku1") is its own key: no parsing per row.
  if (typeof v === "string" && !startsNumberOrDate(v)) return v;
  const n = numeric(v);
  if (n !== null) return n;
  if (typeof v === "number") return v;
  const date = normalizeValue("date", v).value;
  return typeof date === "number" ? date : v;
}

/** A total order on keys (numbers < strings, numbers numerically, strings by UTF-16 code units), so
 * min/max/most recent never depend on the order rows arrive in even when kinds are mixed. */
function compareKeys(a: Key, b: Key): number {
  if (typeof a === "number") {
    if (typeof b !== "number") return -1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof b === "number") return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------
// Exact binary arithmetic: a finite double is m·2^e exactly, so sums of doubles are exact as m·2^e too.

const float64 = new DataView(new ArrayBuffer(8));

function bitLength(a: bigint): number {
  return a === 0n ? 0 : a.toString(2).length;
}

/** m·2^e with m odd (or 0 with e 0): one representation per value, so states are canonical. */
function canonical(m: bigint, e: number): [bigint, number] {
  if (m === 0n) return [0n, 0];
  const zeros = bitLength(m & -m) - 1;
  return [m >> BigInt(zeros), e + zeros];
}

function decompose(x: number): [bigint, number] {
  if (Number.isSafeInteger(x)) return canonical(BigInt(x), 0);
  float64.setFloat64(0, x);
  const hi = float64.getUint32(0);
  const lo = float64.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e = -1074;
  if (biased !== 0) {
    m |= 1n << 52n;
    e = biased - 1075;
  }
  return canonical(hi >>> 31 === 1 ? -m : m, e);
}

function addExact(m: bigint, e: number, x: number, sign: 1 | -1): [bigint, number] {
  const [xm, xe] = decompose(x);
  if (xm === 0n) return [m, e];
  if (m === 0n) return [sign === 1 ? xm : -xm, xe];
  const low = Math.min(e, xe);
  const total = (m << BigInt(e - low)) + (sign === 1 ? xm : -xm) * (1n << BigInt(xe - low));
  return canonical(total, low);
}

/**
 * The double nearest to ±(a + f)·2^e where 0 ≤ f < 1 and `sticky` says f > 0 (round half to even, with
 * subnormals and overflow to ±Infinity as IEEE-754 addition would). -0 is returned as 0.
 */
function roundToDouble(negative: boolean, a: bigint, e: number, sticky: boolean): number {
  if (a === 0n) return 0;
  const top = bitLength(a) - 1 + e;
  const lsb = Math.max(top - 52, -1074);
  const shift = lsb - e;
  let result: number;
  if (shift <= 0) {
    // At most 53 significant bits with the lowest at or above 2^-1074: exact (or beyond 2^1024: Infinity).
    result = Number(a) * 2 ** e;
  } else {
    const s = BigInt(shift);
    let q = a >> s;
    const r = a - (q << s);
    const half = 1n << (s - 1n);
    if (r > half || (r === half && (sticky || (q & 1n) === 1n))) q += 1n;
    result = Number(q) * 2 ** lsb;
  }
  if (result === 0) return 0;
  return negative ? -result : result;
}

function exactToDouble(m: bigint, e: number): number {
  return roundToDouble(m < 0n, m < 0n ? -m : m, e, false);
}

/** The double nearest to m·2^e / n (n ≥ 1): the quotient is taken to at least 55 bits plus a sticky bit. */
function exactMean(m: bigint, e: number, n: number): number {
  const negative = m < 0n;
  const a = negative ? -m : m;
  if (a === 0n) return 0;
  const d = BigInt(n);
  const k = Math.max(0, 55 - bitLength(a) + bitLength(d));
  const scaled = a << BigInt(k);
  return roundToDouble(negative, scaled / d, e - k, scaled % d !== 0n);
}

// ---------------------------------------------------------------------------------------------------
// Filters

/** Comparison of a non-null column value with a match value: numbers (and numeric strings) numerically,
 * dates (Date values are epoch ms by now, date strings parsed) as epoch ms, else text; mixed kinds by the
 * total order of keys, so gt and lte are exact complements. */
function compareToMatch(v: PropertyScalar, match: PropertyScalar): number {
  return compareKeys(keyOf(v), keyOf(match));
}

function matchList(match: PropertyFilter["match"]): readonly PropertyScalar[] {
  if (Array.isArray(match)) return match as readonly PropertyScalar[];
  // A string is a comma-separated list; pieces are trimmed ("a, b" means "a" and "b") and empty ones
  // dropped, so "" is the empty list (an array can still ask for the empty string).
  if (typeof match === "string") return match.split(",").map((piece) => piece.trim()).filter((piece) => piece !== "");
  if (typeof match === "number" || typeof match === "boolean") return [match];
  return [];
}

function scalarMatch(match: PropertyFilter["match"]): PropertyScalar | null {
  if (match === null || match === undefined || Array.isArray(match)) return null;
  return scalar(match) as PropertyScalar | null;
}

function filterPasses(filter: PropertyFilter, row: Row): boolean {
  const v = scalar(row[filter.key]);
  if (filter.op === "exists") return v !== null;
  if (filter.op === "notExists") return v === null;
  // SQL semantics: a comparison with NULL is unknown, so no other operator (not even ne or notSubstring)
  // passes a null column value; likewise a missing or null match value passes nothing.
  if (v === null) return false;
  if (filter.op === "in") {
    for (const item of matchList(filter.match)) {
      const m = scalar(item);
      if (m !== null && compareToMatch(v, m) === 0) return true;
    }
    return false;
  }
  const match = scalarMatch(filter.match);
  if (match === null) return false;
  switch (filter.op) {
    case "eq":
      return compareToMatch(v, match) === 0;
    case "ne":
      return compareToMatch(v, match) !== 0;
    case "gt":
      return compareToMatch(v, match) > 0;
    case "gte":
      return compareToMatch(v, match) >= 0;
    case "lt":
      return compareToMatch(v, match) < 0;
    case "lte":
      return compareToMatch(v, match) <= 0;
    // Case-sensitive containment of the texts (a Date column's text is its epoch ms).
    case "substring":
      return String(v).includes(String(match));
    case "notSubstring":
      return !String(v).includes(String(match));
  }
}

/** A row passes when every filter passes (no filters: every row passes). */
export function rowPassesFilters(filters: readonly PropertyFilter[], row: Row): boolean {
  for (const filter of filters) if (!filterPasses(filter, row)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Spec

function isScalarMatch(x: unknown): x is PropertyScalar {
  return typeof x === "string" || typeof x === "boolean" || (typeof x === "number" && Number.isFinite(x));
}

/** One problem of an aggregation: the field of the property it is in (as config names it) and what is wrong. */
export interface AggregateProblem {
  field: readonly (string | number)[];
  message: string;
}

/** What the property around an aggregation says about it (the config knows; a bare spec does not). */
export interface AggregatedProperty {
  type: PropertyType;
  unique: boolean;
  /** The id of its source when that is its model's primary source (one row per record). */
  primarySourceId?: string;
}

const NUMERIC_TYPES: readonly PropertyType[] = ["integer", "float"];

/**
 * Every problem of an aggregation spec (and, given the property around it, of the combination): the
 * only check of aggregations, reported by the config validator and enforced by emptyAggregate.
 */
export function aggregateProblems(spec: AggregateSpec, property?: AggregatedProperty): AggregateProblem[] {
  const problems: AggregateProblem[] = [];
  const add = (field: readonly (string | number)[], message: string) => problems.push({ field, message });
  const method = spec.method;
  if (!(AGGREGATION_METHODS as readonly string[]).includes(method)) {
    return [{ field: ["options", "aggregationMethod"], message: `must be one of ${AGGREGATION_METHODS.join(", ")} (got ${JSON.stringify(method)})` }];
  }
  if (typeof spec.column !== "string" || spec.column === "") add(["options", "column"], "is required");
  if (property?.unique && spec.isArray) add(["isArray"], "a unique property cannot be an array");
  if (property?.unique && method !== "exact") add(["options", "aggregationMethod"], `a unique property must use exact (got ${method})`);
  if (method !== "exact" && property?.primarySourceId !== undefined) {
    add(["options", "aggregationMethod"], `${method} needs a source with many rows per record; "${property.primarySourceId}" is its model's primary source (one row per record)`);
  }
  if (spec.isArray && method !== "exact") add(["options", "aggregationMethod"], `an array property collects values with exact (got ${method})`);
  if (property && (method === "sum" || method === "average") && !NUMERIC_TYPES.includes(property.type)) {
    add(["options", "aggregationMethod"], `${method} needs an integer or float property (type is ${property.type})`);
  }
  if (property && method === "count" && property.type !== "integer") add(["options", "aggregationMethod"], `count needs an integer property (type is ${property.type})`);
  const sorted = SORTED_AGGREGATIONS.includes(method);
  const hasSort = typeof spec.sortColumn === "string" && spec.sortColumn !== "";
  if (sorted && !hasSort) add(["options", "sortColumn"], `is required for ${method}`);
  if (!sorted && spec.sortColumn !== undefined) add(["options", "sortColumn"], `only applies to most recent value and least recent value (method is ${method})`);
  spec.filters.forEach((filter, i) => {
    const at = (field: string) => ["filters", i, field];
    if (typeof filter.key !== "string" || filter.key === "") add(at("key"), "is required");
    if (!(FILTER_OPERATORS as readonly string[]).includes(filter.op)) {
      add(at("op"), `must be one of ${FILTER_OPERATORS.join(", ")} (got ${JSON.stringify(filter.op)})`);
      return;
    }
    if (filter.op === "exists" || filter.op === "notExists") {
      if (filter.match !== undefined) add(at("match"), `op ${filter.op} takes no match`);
      return;
    }
    if (filter.match === undefined) {
      add(at("match"), `is required for op ${filter.op}`);
      return;
    }
    if (filter.match === null) {
      add(at("match"), `null matches no row with op ${filter.op} (use exists or notExists)`);
      return;
    }
    if (filter.op === "in") {
      const ok = typeof filter.match === "string" || (Array.isArray(filter.match) && (filter.match as readonly unknown[]).every(isScalarMatch));
      if (!ok) add(at("match"), "op in needs a list (or a comma-separated string)");
      return;
    }
    if (Array.isArray(filter.match)) add(at("match"), `only op in takes a list (op is ${filter.op})`);
    else if (!isScalarMatch(filter.match)) add(at("match"), `must be a string, number or boolean for op ${filter.op}`);
  });
  return problems;
}

/**
 * A short, stable hash of what an aggregation's state depends on (method, column, sort column, filters,
 * isArray): a state stamped with another hash was built by another definition and is rebuilt from the
 * rows, never reused (FNV-1a over the spec's JSON).
 */
export function aggregateHash(spec: AggregateSpec): string {
  const text = JSON.stringify([spec.method, spec.column, spec.sortColumn ?? null, spec.filters.map((f) => [f.key, f.op, f.match ?? null]), spec.isArray]);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

/** The first problem of a bare spec as "field: message", or null when it can be maintained. */
export function isAggregateSpecValid(spec: AggregateSpec): string | null {
  const problem = aggregateProblems(spec)[0];
  return problem === undefined ? null : `${problem.field.map((f) => (typeof f === "number" ? `[${f}]` : f)).join(".").replace(/\.\[/g, "[")}: ${problem.message}`;
}

function stateKind(method: AggregationMethod): AggregateState["kind"] {
  switch (method) {
    case "count":
      return "count";
    case "sum":
    case "average":
      return "sum";
    case "exact":
      return "values";
    case "min":
    case "max":
    case "most recent value":
    case "least recent value":
      return "keyed";
  }
}

/** The state over no rows. Throws on an invalid spec (see isAggregateSpecValid). */
/** Specs already checked (a spec is checked once, not at every record it starts a state for). */
const validSpecs = new WeakSet<AggregateSpec>();

export function emptyAggregate(spec: AggregateSpec): AggregateState {
  if (!validSpecs.has(spec)) {
    const problem = isAggregateSpecValid(spec);
    if (problem !== null) throw new Error(problem);
    validSpecs.add(spec);
  }
  switch (stateKind(spec.method)) {
    case "count":
      return { kind: "count", n: 0 };
    case "sum":
      return { kind: "sum", n: 0, m: "0", e: 0 };
    case "values":
      return { kind: "values", rows: [] };
    case "keyed":
      return { kind: "keyed", method: spec.method, best: null };
  }
}

// ---------------------------------------------------------------------------------------------------
// One row's contribution

type Contribution = { value: PropertyScalar; key: Key };

/** What a row contributes (null: nothing): it must pass the filters and have a non-null column value;
 * sum/average also need it numeric, most/least recent a non-null sort column. */
function contribution(spec: AggregateSpec, row: Row | null): Contribution | null {
  if (row === null || !rowPassesFilters(spec.filters, row)) return null;
  const value = scalar(row[spec.column]);
  if (value === null) return null;
  switch (spec.method) {
    case "count":
    case "exact":
      return { value, key: 0 };
    case "sum":
    case "average": {
      const n = numeric(value);
      return n === null ? null : { value: n, key: n };
    }
    case "min":
    case "max":
      return { value, key: keyOf(value) };
    case "most recent value":
    case "least recent value": {
      const sortValue = scalar(row[spec.sortColumn ?? ""]);
      return sortValue === null ? null : { value, key: keyOf(sortValue) };
    }
  }
}

/** Index of rowKey in rows sorted by rowKey, or -(insertion point) - 1. */
function search(rows: readonly (readonly [string, ...unknown[]])[], rowKey: string): number {
  let lo = 0;
  let hi = rows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareStrings((rows[mid] as readonly [string])[0], rowKey);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -lo - 1;
}

function belongs(spec: AggregateSpec, state: AggregateState): boolean {
  return state.kind === stateKind(spec.method) && (state.kind !== "keyed" || state.method === spec.method);
}

function mismatch(spec: AggregateSpec, state: AggregateState): Error {
  const kind = state.kind === "keyed" ? `keyed (${state.method})` : state.kind;
  return new Error(`Aggregate state of kind "${kind}" does not belong to method "${spec.method}"; rebuild it from the source`);
}

/**
 * Applies one row change for ONE record and returns the state. MUTATES the given state in place and
 * returns that same object (no copy of the per-row arrays on every change).
 *
 * count / sum / average subtract `before`'s contribution and add `after`'s, so `before` must be the row as
 * it was last applied to this state (a change stream gives exactly that; redelivered changes must be
 * dropped upstream). The per-row kinds replace the entry for rowKey and ignore `before`'s contents.
 * `others` (needed by min, max and most / least recent value) gives the record's other rows; it is read
 * only when the chosen row leaves or gets worse, and throws if absent then.
 * A row moving between records is a delete (after = null) on the old record's state and an insert
 * (before = null) on the new one's.
 */
export function applyRowChange(spec: AggregateSpec, state: AggregateState, rowKey: string, before: Row | null, after: Row | null, others?: OtherRows): AggregateState {
  if (!belongs(spec, state)) throw mismatch(spec, state);
  const added = contribution(spec, after);
  switch (state.kind) {
    case "count": {
      const n = state.n - (contribution(spec, before) === null ? 0 : 1) + (added === null ? 0 : 1);
      if (n < 0) throw new Error(`Aggregate count for row "${rowKey}" went below zero: the change's old row was never applied`);
      state.n = n;
      return state;
    }
    case "sum": {
      const removed = contribution(spec, before);
      let n = state.n;
      let m = BigInt(state.m);
      let e = state.e;
      if (removed !== null) {
        [m, e] = addExact(m, e, removed.value as number, -1);
        n -= 1;
      }
      if (added !== null) {
        [m, e] = addExact(m, e, added.value as number, 1);
        n += 1;
      }
      if (n < 0) throw new Error(`Aggregate sum for row "${rowKey}" went below zero rows: the change's old row was never applied`);
      state.n = n;
      state.m = m.toString();
      state.e = e;
      return state;
    }
    case "values": {
      const at = search(state.rows, rowKey);
      if (added === null) {
        if (at >= 0) state.rows.splice(at, 1);
      } else if (at >= 0) state.rows[at] = [rowKey, added.value];
      else state.rows.splice(-at - 1, 0, [rowKey, added.value]);
      return state;
    }
    case "keyed": {
      const entry: [string, PropertyScalar, Key] | null = added === null ? null : [rowKey, added.value, added.key];
      const best = state.best;
      if (best !== null && best[0] === rowKey) {
        // The chosen row changed: still at least as good, it stays chosen (it beat every other row);
        // gone or worse, every row competes again.
        if (entry !== null && !beats(spec.method, best, entry)) state.best = entry;
        else state.best = chooseAgain(spec, rowKey, entry, others);
      } else if (entry !== null && (best === null || beats(spec.method, entry, best))) {
        state.best = entry;
      }
      return state;
    }
  }
}

/** Whether row a is chosen over row b: the order `pickKeyed` applies to rows in rowKey order. */
function beats(method: AggregationMethod, a: readonly [string, PropertyScalar, Key], b: readonly [string, PropertyScalar, Key]): boolean {
  const c = compareKeys(a[2], b[2]);
  if (c !== 0) return method === "min" || method === "least recent value" ? c < 0 : c > 0;
  return method === "most recent value" ? compareStrings(a[0], b[0]) > 0 : compareStrings(a[0], b[0]) < 0;
}

function chooseAgain(spec: AggregateSpec, rowKey: string, entry: [string, PropertyScalar, Key] | null, others: OtherRows | undefined): [string, PropertyScalar, Key] | null {
  if (!others) throw new Error(`The ${spec.method} aggregate lost its chosen row "${rowKey}" and needs the record's other rows to choose again`);
  let best = entry;
  for (const [key, row] of others()) {
    if (key === rowKey) continue;
    const c = contribution(spec, row);
    if (c === null) continue;
    const candidate: [string, PropertyScalar, Key] = [key, c.value, c.key];
    if (best === null || beats(spec.method, candidate, best)) best = candidate;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------
// Values

/** The entry chosen by a keyed method among rows in rowKey order. Ties: min, max and least recent keep
 * the smallest rowKey (the first met); most recent takes the greatest rowKey (the last met). */
function pickKeyed(method: AggregationMethod, rows: readonly (readonly [string, PropertyScalar, Key])[]): PropertyValue {
  let best: readonly [string, PropertyScalar, Key] | null = null;
  for (const row of rows) {
    if (best === null) {
      best = row;
      continue;
    }
    const c = compareKeys(row[2], best[2]);
    if (method === "min" || method === "least recent value" ? c < 0 : method === "max" ? c > 0 : c >= 0) best = row;
  }
  return best === null ? null : best[1];
}

function valueFromEntries(spec: AggregateSpec, entries: readonly (readonly [string, PropertyScalar])[]): PropertyValue | PropertyValue[] {
  if (spec.isArray) return entries.map((entry) => entry[1]);
  const first = entries[0];
  return first === undefined ? null : first[1];
}

function valueFromSum(method: AggregationMethod, n: number, m: bigint, e: number): PropertyValue {
  if (method === "sum") return exactToDouble(m, e);
  return n === 0 ? null : exactMean(m, e, n);
}

/** The aggregate's current value: a scalar, or an array for isArray exact. Over no (passing) rows: count and sum are 0, the others null (isArray exact: []). */
export function aggregateValue(spec: AggregateSpec, state: AggregateState): PropertyValue | PropertyValue[] {
  if (!belongs(spec, state)) throw mismatch(spec, state);
  switch (state.kind) {
    case "count":
      return state.n;
    case "sum":
      return valueFromSum(spec.method, state.n, BigInt(state.m), state.e);
    case "values":
      return valueFromEntries(spec, state.rows);
    case "keyed":
      return state.best === null ? null : state.best[1];
  }
}

/**
 * The definition the incremental form must equal, computed directly over the record's rows:
 * - count: passing rows whose column value is non-null (not Grouparoo's count of rows: a null is "no value").
 * - sum: the correctly rounded exact sum of the numeric values (numbers, decimal strings, dates as epoch
 *   ms); 0 over none. average: the correctly rounded exact sum / their count; null over none.
 * - min / max: by the key order (numbers and numeric strings numerically, date strings as epoch ms, then
 *   other text; booleans as "true"/"false"); returns the row's value itself.
 * - most / least recent value: the value of the row with the greatest / smallest sort key, ties to the
 *   greatest / smallest rowKey; rows with a null sort column are ignored.
 * - exact: the value of the smallest rowKey (UTF-16 string order); isArray: all values in rowKey order.
 */
export function aggregateFromScratch(spec: AggregateSpec, rows: ReadonlyMap<string, Row>): PropertyValue | PropertyValue[] {
  const problem = isAggregateSpecValid(spec);
  if (problem !== null) throw new Error(problem);
  const entries: [string, Contribution][] = [];
  for (const [rowKey, row] of rows) {
    const c = contribution(spec, row);
    if (c !== null) entries.push([rowKey, c]);
  }
  entries.sort((a, b) => compareStrings(a[0], b[0]));
  switch (spec.method) {
    case "count":
      return entries.length;
    case "sum":
    case "average": {
      let m = 0n;
      let e = 0;
      for (const [, c] of entries) [m, e] = addExact(m, e, c.value as number, 1);
      return valueFromSum(spec.method, entries.length, m, e);
    }
    case "exact":
      return valueFromEntries(
        spec,
        entries.map(([rowKey, c]) => [rowKey, c.value]),
      );
    default:
      return pickKeyed(
        spec.method,
        entries.map(([rowKey, c]) => [rowKey, c.value, c.key]),
      );
  }
}
