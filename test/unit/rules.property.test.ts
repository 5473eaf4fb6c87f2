// Group rules, properties over random inputs: membership never changes before nextBoundary (and, for
// one value, does change at it), relative windows agree with a Date-based calendar, transition agrees
// with isMember, groupsAffectedBy never misses a group a change can affect, negated operators are the
// exact complement of their positive forms, and LIKE agrees with a reference matcher.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileGroup, groupsAffectedBy, isMember, isMemberOf, nextBoundary, transition, type GroupRuleSpec, type RecordValues } from "../../core/rules.js";
import type { PropertyValue, RelativeUnit, RuleOperator } from "../../core/vocabulary.js";

const DAY = 86_400_000;
const FROM = Date.UTC(1990, 0, 1);
const TO = Date.UTC(2060, 0, 1);
const RUNS = { numRuns: 400 };

/** The reference calendar: Date's own UTC fields, day of month clamped to the target month. */
function refShiftMonths(t: number, months: number): number {
  const d = new Date(t);
  const timeOfDay = t - Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months + 1, 0)).getUTCDate();
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, Math.min(d.getUTCDate(), lastDay)) + timeOfDay;
}

const UNIT_MONTHS: Record<RelativeUnit, number> = { days: 0, weeks: 0, months: 1, quarters: 3, years: 12 };
const UNIT_MS: Record<RelativeUnit, number> = { days: DAY, weeks: 7 * DAY, months: 0, quarters: 0, years: 0 };
function refShift(t: number, n: number, unit: RelativeUnit): number {
  return UNIT_MONTHS[unit] > 0 ? refShiftMonths(t, n * UNIT_MONTHS[unit]) : t + n * UNIT_MS[unit];
}

// Instants: anywhere, or in the last days of a month, where calendar clamping bites.
const anyInstant = fc.integer({ min: FROM, max: TO });
const monthEnd = fc
  .record({
    year: fc.integer({ min: 1990, max: 2059 }),
    month: fc.integer({ min: 0, max: 11 }),
    daysBack: fc.integer({ min: 1, max: 4 }),
    timeOfDay: fc.oneof(fc.integer({ min: 0, max: DAY - 1 }), fc.constantFrom(0, 1, DAY - 1, DAY / 2)),
  })
  .map(({ year, month, daysBack, timeOfDay }) => Date.UTC(year, month + 1, 1) - daysBack * DAY + timeOfDay);
const instant = fc.oneof(anyInstant, monthEnd);

/** A value placed relative to `now`: near now ± k calendar months or k days, or anywhere. */
const offset = fc.oneof(
  fc.record({ kind: fc.constant("months" as const), k: fc.integer({ min: -40, max: 40 }), delta: fc.integer({ min: -3 * DAY, max: 3 * DAY }) }),
  fc.record({ kind: fc.constant("months" as const), k: fc.integer({ min: -40, max: 40 }), delta: fc.integer({ min: -2, max: 2 }) }),
  fc.record({ kind: fc.constant("days" as const), k: fc.integer({ min: -60, max: 60 }), delta: fc.integer({ min: -2, max: 2 }) }),
  fc.record({ kind: fc.constant("anywhere" as const), k: fc.integer({ min: FROM, max: TO }), delta: fc.constant(0) }),
);
type Offset = typeof offset extends fc.Arbitrary<infer T> ? T : never;
function place(now: number, o: Offset): number {
  if (o.kind === "anywhere") return o.k;
  return (o.kind === "months" ? refShiftMonths(now, o.k) : now + o.k * DAY) + o.delta;
}

const unit = fc.constantFrom<RelativeUnit>("days", "weeks", "months", "quarters", "years");
const relativeRule = (key: string, isArray: boolean) =>
  fc.record({
    key: fc.constant(key),
    type: fc.constant("date" as const),
    isArray: fc.constant(isArray),
    op: fc.constantFrom<RuleOperator>("relative_gt", "relative_lt"),
    relativeMatchNumber: fc.integer({ min: 0, max: 14 }),
    relativeMatchUnit: unit,
  });

/** Scalar date keys "a", "b"; array date key "c". */
const relativeGroup = fc.record({
  matchType: fc.constantFrom("all" as const, "any" as const),
  rules: fc.array(fc.oneof(relativeRule("a", false), relativeRule("b", false), relativeRule("c", true)), { minLength: 1, maxLength: 4 }),
});
const relativeScenario = fc.record({
  group: relativeGroup,
  now: instant,
  a: fc.option(offset, { freq: 5 }),
  b: fc.option(offset, { freq: 5 }),
  c: fc.option(fc.array(fc.option(offset, { freq: 5 }), { maxLength: 3 }), { freq: 5 }),
  fractions: fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 4, maxLength: 8 }),
});

function relativeRecord(s: { now: number; a: Offset | null; b: Offset | null; c: (Offset | null)[] | null }): RecordValues {
  return {
    a: s.a === null ? null : place(s.now, s.a),
    b: s.b === null ? null : place(s.now, s.b),
    c: s.c === null ? null : s.c.map((o) => (o === null ? null : place(s.now, o))),
  };
}

describe("nextBoundary (property)", () => {
  it("membership does not change strictly between now and the boundary, nor ever when it is null", () => {
    fc.assert(
      fc.property(relativeScenario, (s) => {
        const group = compileGroup({ id: "g", ...s.group });
        const record = relativeRecord(s);
        const atNow = isMember(group, record, s.now);
        const boundary = nextBoundary(group, record, s.now);
        const horizon = boundary ?? s.now + 60 * 366 * DAY;
        if (boundary !== null) expect(boundary).toBeGreaterThan(s.now);
        const samples = [s.now + 1, horizon - 1, ...s.fractions.map((f) => s.now + 1 + Math.floor(f * (horizon - s.now - 1)))];
        for (const t of samples) {
          if (t > s.now && t < horizon) expect(isMember(group, record, t)).toBe(atNow);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("for one rule over one value, every boundary is a real flip and nothing flips between boundaries", () => {
    fc.assert(
      fc.property(
        relativeRule("a", false),
        instant,
        offset,
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 3, maxLength: 3 }),
        (rule, now, o, fractions) => {
          const group = compileGroup({ id: "g", matchType: "all", rules: [rule] });
          const record = { a: place(now, o) };
          let t = now;
          for (let step = 0; step < 12; step++) {
            const before = isMember(group, record, t);
            const boundary = nextBoundary(group, record, t);
            if (boundary === null) {
              for (const f of fractions) expect(isMember(group, record, t + 1 + Math.floor(f * 100 * 366 * DAY))).toBe(before);
              return;
            }
            expect(isMember(group, record, boundary - 1)).toBe(before);
            for (const f of fractions) {
              const between = t + 1 + Math.floor(f * (boundary - t - 1));
              if (between < boundary) expect(isMember(group, record, between)).toBe(before);
            }
            expect(isMember(group, record, boundary)).toBe(!before);
            t = boundary;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("relative windows (property)", () => {
  it("relative_gt holds exactly on [now - N units, now] and relative_lt on [now, now + N units], by the reference calendar", () => {
    fc.assert(
      fc.property(relativeRule("a", false), instant, fc.option(offset), fc.integer({ min: -2, max: 2 }), (rule, now, o, delta) => {
        const n = rule.relativeMatchNumber;
        // Without an offset, the value sits within 2 ms of the window's calendar edge.
        const edge = refShift(now, rule.op === "relative_gt" ? -n : n, rule.relativeMatchUnit);
        const value = o === null ? edge + delta : place(now, o);
        const group = compileGroup({ id: "g", matchType: "all", rules: [rule] });
        const expected =
          rule.op === "relative_gt"
            ? refShift(now, -n, rule.relativeMatchUnit) <= value && value <= now
            : now <= value && value <= refShift(now, n, rule.relativeMatchUnit);
        expect(isMember(group, { a: value }, now)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });
});

// Mixed groups over an integer "n", a string "s", a string array "t" and a date "d".
const mixedRule: fc.Arbitrary<GroupRuleSpec> = fc.oneof(
  fc.record({
    key: fc.constant("n"),
    type: fc.constant("integer" as const),
    isArray: fc.constant(false),
    op: fc.constantFrom<RuleOperator>("exists", "notExists", "eq", "ne", "gt", "lt", "gte", "lte"),
    match: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constant(null)),
  }),
  fc.record({
    key: fc.constantFrom("s", "t"),
    type: fc.constant("string" as const),
    isArray: fc.boolean(),
    op: fc.constantFrom<RuleOperator>("exists", "notExists", "eq", "ne", "like", "notLike", "iLike", "notILike", "startsWith", "endsWith", "substring"),
    match: fc.oneof(fc.stringMatching(/^[abAB%_]{0,3}$/), fc.constant("null")),
  }),
  relativeRule("d", false),
).map((r) => {
  // exists / notExists take no match
  if (r.op === "exists" || r.op === "notExists") {
    const { match: _match, ...rest } = r as GroupRuleSpec;
    return rest;
  }
  // null matches only go with eq / ne; give the others a concrete one
  if ("match" in r && (r.match === null || r.match === "null") && r.op !== "eq" && r.op !== "ne") return { ...r, match: r.key === "n" ? 0 : "a" };
  return r;
});
const mixedGroup = fc.record({
  id: fc.constantFrom("g1", "g2", "g3"),
  matchType: fc.constantFrom("all" as const, "any" as const),
  rules: fc.array(mixedRule, { maxLength: 4 }),
});
const text = fc.stringMatching(/^[abAB]{0,3}$/);
const mixedRecord: fc.Arbitrary<Record<string, PropertyValue | PropertyValue[]>> = fc.record({
  n: fc.option(fc.integer({ min: -4, max: 4 })),
  s: fc.option(text),
  t: fc.option(fc.array(fc.option(text), { maxLength: 3 })),
  d: fc.option(fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2024, 11, 31) })),
});
const NOW = Date.UTC(2024, 5, 30, 12);

describe("transition (property)", () => {
  it("is enter / leave / stay / none exactly as isMember before and after say", () => {
    fc.assert(
      fc.property(mixedGroup, fc.option(mixedRecord), fc.option(mixedRecord), (spec, before, after) => {
        const group = compileGroup(spec);
        const was = isMember(group, before, NOW);
        const is = isMember(group, after, NOW);
        const expected = was ? (is ? "stay" : "leave") : is ? "enter" : "none";
        expect(transition(group, before, after, NOW)).toBe(expected);
      }),
      RUNS,
    );
  });
});

// Groups over plain property values, as compiled into one function each: the keys include one an
// object inherits ("constructor", "toString") and one no identifier could name, and records may lack any key.
const ODD_KEY = 'a"b\\c\u2028d`${e}';
const plainRule: fc.Arbitrary<GroupRuleSpec> = mixedRule
  .filter((r) => r.key !== "d")
  .chain((r) => fc.constantFrom(r.key, "constructor", "toString", ODD_KEY).map((key) => ({ ...r, key: r.key === "n" ? r.key : key })));
const plainGroup = fc.record({ id: fc.constant("g"), matchType: fc.constantFrom("all" as const, "any" as const), rules: fc.array(plainRule, { minLength: 1, maxLength: 4 }) });
const plainRecord: fc.Arbitrary<Record<string, PropertyValue | PropertyValue[]>> = fc
  .record(
    {
      n: fc.option(fc.integer({ min: -4, max: 4 })),
      s: fc.option(text),
      t: fc.option(fc.array(fc.option(text), { maxLength: 3 })),
      constructor: fc.oneof(fc.option(text), fc.array(fc.option(text), { maxLength: 3 })),
      toString: fc.oneof(fc.option(text), fc.array(fc.option(text), { maxLength: 3 })),
      [ODD_KEY]: fc.oneof(fc.option(text), fc.array(fc.option(text), { maxLength: 3 })),
    },
    { requiredKeys: [] },
  )
  .map((r) => Object.assign({}, r));

describe("compiled membership (property)", () => {
  it("a group of plain rules is judged by one compiled function, exactly as its rules interpreted one by one", () => {
    fc.assert(
      fc.property(plainGroup, plainRecord, (spec, record) => {
        const group = compileGroup(spec);
        expect(group.member).toBeTypeOf("function");
        expect(isMember(group, record, NOW)).toBe(isMemberOf(group, record, NOW));
      }),
      { numRuns: 2000 },
    );
  });

  it("groups with relative-date rules or top-level keys are interpreted", () => {
    expect(compileGroup({ id: "r", matchType: "all", rules: [{ key: "d", type: "date", isArray: false, op: "relative_gt", relativeMatchNumber: 3, relativeMatchUnit: "days" }] }).member).toBeUndefined();
    expect(compileGroup({ id: "t", matchType: "all", rules: [{ key: "grouparooId", type: "string", isArray: false, op: "eq", match: "7" }] }).member).toBeUndefined();
  });
});

describe("groupsAffectedBy (property)", () => {
  it("a group it leaves out keeps its membership when only the changed keys change", () => {
    fc.assert(
      fc.property(
        fc.array(mixedGroup, { maxLength: 4 }),
        mixedRecord,
        mixedRecord,
        fc.subarray(["n", "s", "t", "d"]),
        (specs, before, replacement, changed) => {
          const groups = specs.map((spec) => compileGroup(spec));
          const after = { ...before };
          for (const key of changed) after[key] = replacement[key] ?? null;
          const affected = new Set(groupsAffectedBy(groups, changed));
          for (const group of groups) {
            const readsChanged = changed.some((key) => group.reads.has(key));
            expect(affected.has(group)).toBe(readsChanged);
            if (!affected.has(group)) expect(isMember(group, after, NOW)).toBe(isMember(group, before, NOW));
          }
        },
      ),
      RUNS,
    );
  });
});

describe("negated operators (property)", () => {
  const pairs: [RuleOperator, RuleOperator][] = [
    ["eq", "ne"],
    ["like", "notLike"],
    ["iLike", "notILike"],
  ];
  it("on a non-null scalar or any array, ne / notLike / notILike are the complement of eq / like / iLike", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...pairs),
        fc.stringMatching(/^[abAB%_]{0,3}$/).filter((m) => m.toLowerCase() !== "null"),
        fc.oneof(text, fc.array(fc.option(text), { maxLength: 3 })),
        ([positive, negative], match, value) => {
          const isArray = Array.isArray(value);
          const one = (op: RuleOperator) =>
            isMember(compileGroup({ id: "g", matchType: "all", rules: [{ key: "s", type: "string", isArray, op, match }] }), { s: value }, NOW);
          expect(one(negative)).toBe(!one(positive));
        },
      ),
      RUNS,
    );
  });
});

/** Reference SQL LIKE by dynamic programming over code points, `\` escaping the next character. */
function refLike(pattern: string, value: string, ignoreCase: boolean): boolean {
  const tokens: { any: boolean; one: boolean; char: string }[] = [];
  const p = [...pattern];
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === "\\") tokens.push({ any: false, one: false, char: p[++i] as string });
    else tokens.push({ any: c === "%", one: c === "_", char: c });
  }
  const v = [...value];
  const fold = (c: string) => (ignoreCase ? c.toLowerCase() : c);
  let row = [true, ...v.map(() => false)];
  for (const token of tokens) {
    const next = [token.any && (row[0] as boolean), ...v.map(() => false)];
    for (let j = 1; j <= v.length; j++) {
      if (token.any) next[j] = (row[j] as boolean) || (next[j - 1] as boolean);
      else next[j] = (row[j - 1] as boolean) && (token.one || fold(v[j - 1] as string) === fold(token.char));
    }
    row = next;
  }
  return row[v.length] as boolean;
}

describe("LIKE (property)", () => {
  it("like and iLike agree with a reference matcher, metacharacters included", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^(?:[aAb%_.()*+?[\]^$|]|\\[aA%_.\\])*$/).filter((m) => m.toLowerCase() !== "null" && m.length <= 8),
        fc.stringMatching(/^[aAb%_.()*+?[\]^$|\\]{0,6}$/),
        fc.boolean(),
        (pattern, value, ignoreCase) => {
          const op: RuleOperator = ignoreCase ? "iLike" : "like";
          const group = compileGroup({ id: "g", matchType: "all", rules: [{ key: "s", type: "string", isArray: false, op, match: pattern }] });
          expect(isMember(group, { s: value }, NOW)).toBe(refLike(pattern, value, ignoreCase));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
