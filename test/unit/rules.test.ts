// Group rules: exact membership for every operator and type, null and array semantics, LIKE escaping,
// relative-date windows per unit (with month-end clamping), transitions, change routing, the next
// relative-date boundary, and the compile errors users see.
import { describe, expect, it } from "vitest";
import {
  compileGroup,
  groupsAffectedBy,
  GroupRuleError,
  ruleProblems,
  isMember,
  nextBoundary,
  transition,
  type GroupRuleSpec,
  type GroupSpec,
  type RecordValues,
} from "../../core/rules.js";
import type { PropertyType, PropertyValue, RuleOperator } from "../../core/vocabulary.js";

type Value = PropertyValue | readonly PropertyValue[] | undefined;
type Case = [op: RuleOperator, match: GroupRuleSpec["match"], value: Value, expected: boolean];

const DAY = 86_400_000;
const NOW = Date.UTC(2024, 2, 15, 12, 0, 0);
const utc = (iso: string): number => {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) throw new Error(`bad test date ${iso}`);
  return t;
};

function group(rules: GroupRuleSpec[], matchType: GroupSpec["matchType"] = "all", id = "g") {
  return compileGroup({ id, matchType, rules });
}

function holds(rule: Partial<GroupRuleSpec> & { op: RuleOperator }, value: Value, now = NOW): boolean {
  const spec: GroupRuleSpec = { key: "p", type: "string", isArray: false, ...rule };
  const record: RecordValues = value === undefined ? {} : { [spec.key]: value };
  return isMember(group([spec]), record, now);
}

function compileError(spec: GroupSpec): GroupRuleError {
  try {
    compileGroup(spec);
  } catch (error) {
    if (error instanceof GroupRuleError) return error;
    throw error;
  }
  throw new Error("compileGroup accepted an invalid group");
}

function ruleError(rule: Partial<GroupRuleSpec>): string {
  const spec = { key: "p", type: "string", isArray: false, op: "eq", match: "x", ...rule } as GroupRuleSpec;
  return compileError({ id: "g", matchType: "all", rules: [spec] }).message;
}


describe.each<PropertyType>(["string", "email", "phoneNumber", "url"])("%s rules", (type) => {
  const scalar: Case[] = [
    ["exists", undefined, "a", true],
    ["exists", undefined, "", true],
    ["exists", undefined, null, false],
    ["exists", undefined, undefined, false],
    ["notExists", undefined, null, true],
    ["notExists", undefined, undefined, true],
    ["notExists", undefined, "a", false],
    ["eq", "abc", "abc", true],
    ["eq", "abc", "ABC", false],
    ["eq", "abc", "abcd", false],
    ["eq", "abc", null, false],
    ["eq", 42, "42", true],
    ["eq", null, null, true],
    ["eq", null, undefined, true],
    ["eq", null, "abc", false],
    ["eq", "null", null, true],
    ["eq", "null", "null", false],
    ["eq", "NULL", null, true],
    ["ne", "abc", "abd", true],
    ["ne", "abc", "abc", false],
    ["ne", "abc", "ABC", true],
    ["ne", "abc", null, false],
    ["ne", null, "x", true],
    ["ne", null, null, false],
    ["ne", "null", "x", true],
    ["ne", "null", undefined, false],
    ["like", "a%c", "abc", true],
    ["like", "a%c", "ac", true],
    ["like", "a%c", "a-long-c", true],
    ["like", "a%c", "abd", false],
    ["like", "a%c", "ABC", false],
    ["like", "a%c", null, false],
    ["like", "a_c", "abc", true],
    ["like", "a_c", "ac", false],
    ["like", "a_c", "abbc", false],
    ["like", "abc", "xabc", false],
    ["like", "abc", "abcx", false],
    ["like", "%", "", true],
    ["like", "%%b%%", "abc", true],
    ["notLike", "a%", "ba", true],
    ["notLike", "a%", "ab", false],
    ["notLike", "a%", "AB", true],
    ["notLike", "a%", null, false],
    ["iLike", "a%C", "ABc", true],
    ["iLike", "a%C", "abc", true],
    ["iLike", "a%C", "xbc", false],
    ["iLike", "é%", "École", true],
    ["iLike", "a%", null, false],
    ["notILike", "a%", "AB", false],
    ["notILike", "a%", "b", true],
    ["notILike", "a%", null, false],
    ["startsWith", "ab", "abc", true],
    ["startsWith", "ab", "Abc", false],
    ["startsWith", "ab", "xab", false],
    ["startsWith", "ab", null, false],
    ["startsWith", "a%", "a%b", true],
    ["startsWith", "a%", "abc", false],
    ["endsWith", "bc", "abc", true],
    ["endsWith", "bc", "aBC", false],
    ["endsWith", "bc", "bcx", false],
    ["endsWith", "bc", null, false],
    ["substring", "b", "abc", true],
    ["substring", "b", "ABC", false],
    ["substring", "_", "a_b", true],
    ["substring", "_", "ab", false],
    ["substring", "b", null, false],
  ];
  it.each(scalar)("%s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type, op, match }, value)).toBe(expected);
  });

  const arrays: Case[] = [
    ["exists", undefined, ["a"], true],
    ["exists", undefined, [null, "a"], true],
    ["exists", undefined, [], false],
    ["exists", undefined, [null], false],
    ["exists", undefined, null, false],
    ["notExists", undefined, [], true],
    ["notExists", undefined, [null], true],
    ["notExists", undefined, null, true],
    ["notExists", undefined, ["a"], false],
    ["eq", "x", ["a", "x"], true],
    ["eq", "x", ["a"], false],
    ["eq", "x", [], false],
    ["eq", "x", [null], false],
    ["eq", "x", null, false],
    ["eq", null, [], true],
    ["eq", null, [null], true],
    ["eq", null, null, true],
    ["eq", "null", ["a"], false],
    ["ne", "x", ["a", "b"], true],
    ["ne", "x", ["a", "x"], false],
    ["ne", "x", [], true],
    ["ne", "x", [null], true],
    ["ne", "x", null, true],
    ["ne", "x", undefined, true],
    ["ne", null, ["a"], true],
    ["ne", null, [null, "a"], true],
    ["ne", null, [], false],
    ["ne", null, [null], false],
    ["like", "x%", ["ab", "xy"], true],
    ["like", "x%", ["ab"], false],
    ["like", "x%", [], false],
    ["like", "x%", null, false],
    ["notLike", "x%", ["ab", "cd"], true],
    ["notLike", "x%", ["ab", "xy"], false],
    ["notLike", "x%", [], true],
    ["notLike", "x%", null, true],
    ["iLike", "X%", ["ab", "xy"], true],
    ["iLike", "X%", [], false],
    ["notILike", "X%", ["ab", "xy"], false],
    ["notILike", "X%", ["ab"], true],
    ["notILike", "X%", [], true],
    ["startsWith", "ab", ["zz", "abc"], true],
    ["startsWith", "ab", ["zz"], false],
    ["startsWith", "ab", [], false],
    ["endsWith", "bc", ["zz", "abc"], true],
    ["endsWith", "bc", [null], false],
    ["substring", "b", ["zz", "abc"], true],
    ["substring", "b", [], false],
  ];
  it.each(arrays)("array: %s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type, op, match, isArray: true }, value)).toBe(expected);
  });
});

describe.each<PropertyType>(["integer", "float"])("%s rules", (type) => {
  const scalar: Case[] = [
    ["exists", undefined, 0, true],
    ["exists", undefined, null, false],
    ["notExists", undefined, null, true],
    ["notExists", undefined, 0, false],
    ["eq", 5, 5, true],
    ["eq", 5, 6, false],
    ["eq", 5, null, false],
    ["eq", "5", 5, true],
    ["eq", "5.0", 5, true],
    ["eq", null, null, true],
    ["eq", "null", 0, false],
    ["ne", 5, 6, true],
    ["ne", 5, 5, false],
    ["ne", 5, null, false],
    ["ne", null, 0, true],
    ["gt", 5, 6, true],
    ["gt", 5, 5, false],
    ["gt", 5, 4, false],
    ["gt", 5, null, false],
    ["gt", -1, 0, true],
    ["gte", 5, 5, true],
    ["gte", 5, 4, false],
    ["gte", 5, null, false],
    ["lt", 5, 4, true],
    ["lt", 5, 5, false],
    ["lt", 5, null, false],
    ["lte", 5, 5, true],
    ["lte", 5, 6, false],
    ["lte", 5, null, false],
  ];
  it.each(scalar)("%s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type, op, match }, value)).toBe(expected);
  });

  const arrays: Case[] = [
    ["exists", undefined, [0], true],
    ["exists", undefined, [], false],
    ["notExists", undefined, [null], true],
    ["eq", 5, [1, 5], true],
    ["eq", 5, [1], false],
    ["eq", 5, [], false],
    ["ne", 5, [1, 2], true],
    ["ne", 5, [1, 5], false],
    ["ne", 5, [], true],
    ["ne", 5, null, true],
    ["gt", 5, [1, 9], true],
    ["gt", 5, [1, 2], false],
    ["gt", 5, [null], false],
    ["gt", 5, [], false],
    ["gte", 5, [5], true],
    ["lt", 5, [9, 1], true],
    ["lt", 5, [], false],
    ["lte", 5, [6, 7], false],
  ];
  it.each(arrays)("array: %s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type, op, match, isArray: true }, value)).toBe(expected);
  });
});

describe("float rules", () => {
  it.each<Case>([
    ["eq", 1.5, 1.5, true],
    ["eq", "1.5", 1.5, true],
    ["gt", "1.25", 1.3, true],
    ["gt", "1.25", 1.25, false],
    ["lte", 0.1, 0.1, true],
    ["lt", "-0.5", -0.75, true],
  ])("%s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type: "float", op, match }, value)).toBe(expected);
  });
});

describe("boolean rules", () => {
  it.each<Case>([
    ["exists", undefined, false, true],
    ["exists", undefined, null, false],
    ["notExists", undefined, null, true],
    ["notExists", undefined, false, false],
    ["eq", true, true, true],
    ["eq", true, false, false],
    ["eq", true, null, false],
    ["eq", "true", true, true],
    ["eq", "false", false, true],
    ["eq", "false", true, false],
    ["eq", false, false, true],
    ["eq", null, null, true],
    ["eq", null, false, false],
    ["ne", true, false, true],
    ["ne", true, true, false],
    ["ne", true, null, false],
    ["ne", "null", false, true],
  ])("%s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type: "boolean", op, match }, value)).toBe(expected);
  });

  it.each<Case>([
    ["eq", true, [false, true], true],
    ["eq", true, [false], false],
    ["eq", true, [], false],
    ["ne", true, [false], true],
    ["ne", true, [true, false], false],
    ["ne", true, [], true],
    ["exists", undefined, [null, false], true],
    ["notExists", undefined, [], true],
  ])("array: %s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type: "boolean", op, match, isArray: true }, value)).toBe(expected);
  });
});

describe("date rules", () => {
  const D = Date.UTC(2024, 0, 15, 10, 30);
  it.each<Case>([
    ["exists", undefined, D, true],
    ["exists", undefined, null, false],
    ["notExists", undefined, null, true],
    ["eq", "2024-01-15T10:30:00Z", D, true],
    ["eq", "2024-01-15T10:30:00Z", D + 1, false],
    ["eq", "2024-01-15T10:30:00Z", null, false],
    ["eq", "2024-01-15T10:30:00.000+00:00", D, true],
    ["eq", "2024-01-15T12:30:00+02:00", D, true],
    ["eq", "2024-01-15T05:00-0530", D, true],
    ["eq", "2024-01-15T10:30", D, true],
    ["eq", "2024-01-15 10:30:00", D, true],
    ["eq", "2024-01-15", Date.UTC(2024, 0, 15), true],
    ["eq", D, D, true],
    ["eq", String(D), D, true],
    ["eq", null, null, true],
    ["ne", "2024-01-15T10:30:00Z", D + 1, true],
    ["ne", "2024-01-15T10:30:00Z", D, false],
    ["ne", "2024-01-15T10:30:00Z", null, false],
    ["gt", "2024-01-15T10:30:00Z", D + 1, true],
    ["gt", "2024-01-15T10:30:00Z", D, false],
    ["gt", "2024-01-15T10:30:00Z", null, false],
    ["gte", "2024-01-15T10:30:00Z", D, true],
    ["gte", "2024-01-15T10:30:00Z", D - 1, false],
    ["lt", "2024-01-15T10:30:00Z", D - 1, true],
    ["lt", "2024-01-15T10:30:00Z", D, false],
    ["lte", "2024-01-15T10:30:00Z", D, true],
    ["lte", "2024-01-15T10:30:00Z", D + 1, false],
    ["lte", "2024-01-15T10:30:00Z", null, false],
  ])("%s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type: "date", op, match }, value)).toBe(expected);
  });

  it.each<Case>([
    ["gt", D, [D - 5, D + 5], true],
    ["gt", D, [D - 5], false],
    ["gt", D, [], false],
    ["eq", D, [null, D], true],
    ["ne", D, [D - 1], true],
    ["ne", D, [D], false],
    ["ne", D, [], true],
    ["exists", undefined, [], false],
  ])("array: %s %j on %j is %s", (op, match, value, expected) => {
    expect(holds({ type: "date", op, match, isArray: true }, value)).toBe(expected);
  });
});

describe("LIKE patterns", () => {
  it.each<[op: RuleOperator, pattern: string, value: string, expected: boolean]>([
    ["like", "a.c", "a.c", true],
    ["like", "a.c", "abc", false],
    ["like", "f(x)%", "f(x) = 1", true],
    ["like", "f(x)%", "fx = 1", false],
    ["like", "[a]*+?^$|{1}/", "[a]*+?^$|{1}/", true],
    ["like", "[a]*+?^$|{1}/", "a", false],
    ["like", "100\\%", "100%", true],
    ["like", "100\\%", "1000", false],
    ["like", "a\\_b", "a_b", true],
    ["like", "a\\_b", "axb", false],
    ["like", "a\\\\b", "a\\b", true],
    ["like", "a\\xb", "axb", true],
    ["like", "a%b", "a\nline\nb", true],
    ["like", "_", "é", true],
    ["like", "_", "😀", true],
    ["like", "__", "😀", false],
    ["iLike", "A.C", "a.c", true],
    ["iLike", "A.C", "abc", false],
    ["notLike", "a.c", "abc", true],
    ["notILike", "A(B)", "a(b)", false],
  ])("%s %j on %j is %s", (op, pattern, value, expected) => {
    expect(holds({ op, match: pattern }, value)).toBe(expected);
  });
});

describe("matchType", () => {
  const rules: GroupRuleSpec[] = [
    { key: "a", type: "integer", isArray: false, op: "gt", match: 10 },
    { key: "b", type: "string", isArray: false, op: "eq", match: "x" },
  ];
  it.each<[a: number | null, b: string | null, all: boolean, any: boolean]>([
    [11, "x", true, true],
    [11, "y", false, true],
    [9, "x", false, true],
    [9, "y", false, false],
    [null, null, false, false],
  ])("a=%j b=%j: all %s, any %s", (a, b, all, any) => {
    expect(isMember(group(rules, "all"), { a, b }, NOW)).toBe(all);
    expect(isMember(group(rules, "any"), { a, b }, NOW)).toBe(any);
  });

  it("a group with no rules matches nobody, under either matchType", () => {
    expect(isMember(group([], "all"), {}, NOW)).toBe(false);
    expect(isMember(group([], "any"), { a: 1 }, NOW)).toBe(false);
  });

  it("a deleted (null) record is in no group", () => {
    expect(isMember(group([{ key: "a", type: "integer", isArray: false, op: "notExists" }]), null, NOW)).toBe(false);
  });

  it("a key named like an Object.prototype member is still a missing value", () => {
    expect(holds({ key: "constructor", op: "exists" }, undefined)).toBe(false);
    expect(holds({ key: "toString", op: "notExists" }, undefined)).toBe(true);
  });
});

describe("top-level keys", () => {
  it("grouparooId is a string key", () => {
    expect(holds({ key: "grouparooId", op: "eq", match: "rec_1" }, "rec_1")).toBe(true);
    expect(holds({ key: "grouparooId", op: "startsWith", match: "rec_" }, "usr_1")).toBe(false);
  });

  it("grouparooCreatedAt is a date key, with absolute and relative operators", () => {
    const created = Date.UTC(2024, 0, 1, 8);
    expect(holds({ key: "grouparooCreatedAt", type: "date", op: "gte", match: "2024-01-01" }, created)).toBe(true);
    expect(holds({ key: "grouparooCreatedAt", type: "date", op: "lt", match: "2024-01-01" }, created)).toBe(false);
    const rule = { key: "grouparooCreatedAt", type: "date", op: "relative_gt", relativeMatchNumber: 3, relativeMatchUnit: "months" } as const;
    expect(holds(rule, created, Date.UTC(2024, 2, 15))).toBe(true);
    expect(holds(rule, created, Date.UTC(2024, 3, 2))).toBe(false);
  });
});

describe("relative date rules", () => {
  const rel = (op: "relative_gt" | "relative_lt", n: number, unit: GroupRuleSpec["relativeMatchUnit"]) =>
    ({ type: "date", op, relativeMatchNumber: n, relativeMatchUnit: unit }) as const;

  it.each<[unit: "days" | "weeks", n: number, span: number]>([
    ["days", 3, 3 * DAY],
    ["weeks", 2, 14 * DAY],
  ])("relative_gt %s: from now - %i units through now, inclusive", (unit, n, span) => {
    const r = rel("relative_gt", n, unit);
    expect(holds(r, NOW - span)).toBe(true);
    expect(holds(r, NOW - span - 1)).toBe(false);
    expect(holds(r, NOW)).toBe(true);
    expect(holds(r, NOW + 1)).toBe(false);
    expect(holds(r, null)).toBe(false);
  });

  it.each<[unit: "days" | "weeks", n: number, span: number]>([
    ["days", 3, 3 * DAY],
    ["weeks", 2, 14 * DAY],
  ])("relative_lt %s: from now through now + %i units, inclusive", (unit, n, span) => {
    const r = rel("relative_lt", n, unit);
    expect(holds(r, NOW + span)).toBe(true);
    expect(holds(r, NOW + span + 1)).toBe(false);
    expect(holds(r, NOW)).toBe(true);
    expect(holds(r, NOW - 1)).toBe(false);
    expect(holds(r, null)).toBe(false);
  });

  it("a zero span holds only at now", () => {
    expect(holds(rel("relative_gt", 0, "days"), NOW)).toBe(true);
    expect(holds(rel("relative_gt", 0, "days"), NOW - 1)).toBe(false);
    expect(holds(rel("relative_lt", 0, "months"), NOW)).toBe(true);
    expect(holds(rel("relative_lt", 0, "months"), NOW + 1)).toBe(false);
  });

  it("matches an array when any element is in the window", () => {
    const r = { ...rel("relative_gt", 3, "days"), isArray: true };
    expect(holds(r, [NOW - 10 * DAY, NOW - DAY])).toBe(true);
    expect(holds(r, [NOW - 10 * DAY, null])).toBe(false);
    expect(holds(r, [])).toBe(false);
  });

  // [op, n, unit, now, the window's far edge (inclusive)]
  it.each<[op: "relative_gt" | "relative_lt", n: number, unit: "months" | "quarters" | "years", now: string, edge: string]>([
    ["relative_gt", 1, "months", "2023-03-15T12:00:00.000Z", "2023-02-15T12:00:00.000Z"],
    ["relative_gt", 1, "months", "2023-03-31T12:00:00.000Z", "2023-02-28T12:00:00.000Z"],
    ["relative_gt", 1, "months", "2024-03-31T12:00:00.000Z", "2024-02-29T12:00:00.000Z"],
    ["relative_gt", 2, "months", "2024-01-31T00:00:00.000Z", "2023-11-30T00:00:00.000Z"],
    ["relative_gt", 1, "quarters", "2023-05-31T12:00:00.000Z", "2023-02-28T12:00:00.000Z"],
    ["relative_gt", 1, "years", "2024-02-29T12:00:00.000Z", "2023-02-28T12:00:00.000Z"],
    ["relative_gt", 4, "years", "2024-02-29T12:00:00.000Z", "2020-02-29T12:00:00.000Z"],
    ["relative_lt", 1, "months", "2023-01-31T12:00:00.000Z", "2023-02-28T12:00:00.000Z"],
    ["relative_lt", 1, "months", "2024-01-31T12:00:00.000Z", "2024-02-29T12:00:00.000Z"],
    ["relative_lt", 1, "months", "2023-12-15T23:59:59.999Z", "2024-01-15T23:59:59.999Z"],
    ["relative_lt", 1, "quarters", "2023-11-30T12:00:00.000Z", "2024-02-29T12:00:00.000Z"],
    ["relative_lt", 1, "years", "2024-02-29T12:00:00.000Z", "2025-02-28T12:00:00.000Z"],
  ])("%s %i %s at %s reaches exactly %s (UTC, day of month clamped)", (op, n, unit, now, edge) => {
    const r = rel(op, n, unit);
    const t = utc(now);
    const e = utc(edge);
    const outward = op === "relative_gt" ? -1 : 1;
    expect(holds(r, e, t)).toBe(true);
    expect(holds(r, e + outward, t)).toBe(false);
    expect(holds(r, t, t)).toBe(true);
    expect(holds(r, t - outward, t)).toBe(false);
  });
});

describe("transition", () => {
  const g = group([{ key: "ltv", type: "integer", isArray: false, op: "gt", match: 100 }]);
  it.each<[before: RecordValues | null, after: RecordValues | null, expected: string]>([
    [{ ltv: 50 }, { ltv: 150 }, "enter"],
    [{ ltv: 150 }, { ltv: 50 }, "leave"],
    [{ ltv: 150 }, { ltv: 200 }, "stay"],
    [{ ltv: 50 }, { ltv: 60 }, "none"],
    [null, { ltv: 150 }, "enter"],
    [{ ltv: 150 }, null, "leave"],
    [null, null, "none"],
  ])("%j -> %j is %s", (before, after, expected) => {
    expect(transition(g, before, after, NOW)).toBe(expected);
  });

  it("judges both versions at the same instant", () => {
    const recent = group([{ key: "d", type: "date", isArray: false, op: "relative_gt", relativeMatchNumber: 1, relativeMatchUnit: "days" }]);
    expect(transition(recent, { d: NOW - 2 * DAY }, { d: NOW - DAY / 2 }, NOW)).toBe("enter");
    expect(transition(recent, { d: NOW - DAY / 2 }, { d: NOW - DAY / 2 }, NOW + DAY)).toBe("none");
  });
});

describe("groupsAffectedBy", () => {
  const byLtv = group([{ key: "ltv", type: "integer", isArray: false, op: "gt", match: 1 }], "all", "byLtv");
  const byBoth = group(
    [
      { key: "ltv", type: "integer", isArray: false, op: "gt", match: 1 },
      { key: "email", type: "email", isArray: false, op: "exists" },
    ],
    "any",
    "byBoth",
  );
  const created = group([{ key: "grouparooCreatedAt", type: "date", isArray: false, op: "gt", match: 0 }], "all", "created");
  const empty = group([], "all", "empty");
  const all = [byLtv, byBoth, created, empty];
  const ids = (keys: Iterable<string>) => groupsAffectedBy(all, keys).map((g) => g.id);

  it("returns the groups that read a changed key, in input order", () => {
    expect(ids(["email"])).toEqual(["byBoth"]);
    expect(ids(["ltv"])).toEqual(["byLtv", "byBoth"]);
    expect(ids(new Set(["grouparooCreatedAt", "email"]))).toEqual(["byBoth", "created"]);
    expect(ids(["email", "ltv"])).toEqual(["byLtv", "byBoth"]);
  });

  it("returns nothing for unread keys, no keys, and rule-less groups", () => {
    expect(ids(["name"])).toEqual([]);
    expect(ids([])).toEqual([]);
  });

  it("accepts a one-shot iterable", () => {
    function* keys() {
      yield "name";
      yield "ltv";
    }
    expect(ids(keys())).toEqual(["byLtv", "byBoth"]);
  });

  it("exposes what a compiled group reads", () => {
    expect([...byBoth.reads]).toEqual(["ltv", "email"]);
    expect(byBoth.hasRelativeRules).toBe(false);
    expect(group([{ key: "d", type: "date", isArray: false, op: "relative_lt", relativeMatchNumber: 1, relativeMatchUnit: "days" }]).hasRelativeRules).toBe(true);
  });
});

describe("nextBoundary", () => {
  const relGroup = (op: "relative_gt" | "relative_lt", n: number, unit: GroupRuleSpec["relativeMatchUnit"], isArray = false) =>
    group([{ key: "d", type: "date", isArray, op, relativeMatchNumber: n, relativeMatchUnit: unit }]);

  it("relative_gt days: enters at the value, leaves one ms after value + span", () => {
    const g = relGroup("relative_gt", 3, "days");
    expect(nextBoundary(g, { d: NOW + 5 * DAY }, NOW)).toBe(NOW + 5 * DAY);
    expect(nextBoundary(g, { d: NOW - DAY }, NOW)).toBe(NOW + 2 * DAY + 1);
    expect(nextBoundary(g, { d: NOW - 3 * DAY }, NOW)).toBe(NOW + 1);
    expect(nextBoundary(g, { d: NOW - 3 * DAY - 1 }, NOW)).toBeNull();
  });

  it("relative_lt weeks: enters when the value comes within the span, leaves one ms after it", () => {
    const g = relGroup("relative_lt", 1, "weeks");
    expect(nextBoundary(g, { d: NOW + 10 * DAY }, NOW)).toBe(NOW + 3 * DAY);
    expect(nextBoundary(g, { d: NOW + DAY }, NOW)).toBe(NOW + DAY + 1);
    expect(nextBoundary(g, { d: NOW }, NOW)).toBe(NOW + 1);
    expect(nextBoundary(g, { d: NOW - 1 }, NOW)).toBeNull();
  });

  it("is null for a null record, a missing value, or a group without relative rules", () => {
    const g = relGroup("relative_gt", 3, "days");
    expect(nextBoundary(g, null, NOW)).toBeNull();
    expect(nextBoundary(g, {}, NOW)).toBeNull();
    expect(nextBoundary(group([{ key: "d", type: "date", isArray: false, op: "gt", match: 0 }]), { d: NOW }, NOW)).toBeNull();
  });

  it("takes the earliest edge over array elements", () => {
    const g = relGroup("relative_gt", 3, "days", true);
    expect(nextBoundary(g, { d: [NOW + 9 * DAY, NOW - DAY, null, NOW - 30 * DAY] }, NOW)).toBe(NOW + 2 * DAY + 1);
    expect(nextBoundary(g, { d: [] }, NOW)).toBeNull();
  });

  it("relative_gt months: walks the clamped days at a month end, leaving and re-entering each day", () => {
    // v is Feb 28 09:30; one month after Mar 28..31 all clamp onto Feb 28, so "now - 1 month" restarts
    // at Feb 28 00:00 each of those days and passes v at 09:30.
    const g = relGroup("relative_gt", 1, "months");
    const record = { d: utc("2023-02-28T09:30:00.000Z") };
    const walk: string[] = [];
    let t: number | null = utc("2023-03-20T00:00:00.000Z");
    while (t !== null && walk.length < 20) {
      t = nextBoundary(g, record, t);
      if (t !== null) walk.push(`${new Date(t).toISOString()} ${isMember(g, record, t) ? "in" : "out"}`);
    }
    expect(walk).toEqual([
      "2023-03-28T09:30:00.001Z out",
      "2023-03-29T00:00:00.000Z in",
      "2023-03-29T09:30:00.001Z out",
      "2023-03-30T00:00:00.000Z in",
      "2023-03-30T09:30:00.001Z out",
      "2023-03-31T00:00:00.000Z in",
      "2023-03-31T09:30:00.001Z out",
    ]);
  });

  it("relative_lt months: enters per clamped day until the window holds the value for good", () => {
    const g = relGroup("relative_lt", 1, "months");
    const record = { d: utc("2023-02-28T12:00:00.000Z") };
    const walk: string[] = [];
    let t: number | null = utc("2023-01-01T00:00:00.000Z");
    while (t !== null && walk.length < 20) {
      t = nextBoundary(g, record, t);
      if (t !== null) walk.push(`${new Date(t).toISOString()} ${isMember(g, record, t) ? "in" : "out"}`);
    }
    expect(walk).toEqual([
      "2023-01-28T12:00:00.000Z in",
      "2023-01-29T00:00:00.000Z out",
      "2023-01-29T12:00:00.000Z in",
      "2023-01-30T00:00:00.000Z out",
      "2023-01-30T12:00:00.000Z in",
      "2023-01-31T00:00:00.000Z out",
      "2023-01-31T12:00:00.000Z in",
      "2023-02-28T12:00:00.001Z out",
    ]);
  });

  it.each<[unit: "months" | "quarters" | "years", n: number, value: string, now: string, boundary: string]>([
    ["months", 1, "2023-02-15T08:00:00.000Z", "2023-03-01T00:00:00.000Z", "2023-03-15T08:00:00.001Z"],
    ["months", 1, "2024-01-31T08:00:00.000Z", "2024-02-10T00:00:00.000Z", "2024-03-01T00:00:00.000Z"],
    ["quarters", 2, "2023-08-31T23:59:59.999Z", "2023-09-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"],
    ["years", 1, "2024-02-29T06:00:00.000Z", "2024-06-01T00:00:00.000Z", "2025-03-01T00:00:00.000Z"],
  ])("relative_gt %s %i: %s leaves the window at exactly the first instant it is out", (unit, n, value, now, boundary) => {
    const g = relGroup("relative_gt", n, unit);
    const record = { d: utc(value) };
    const b = nextBoundary(g, record, utc(now));
    expect(b === null ? null : new Date(b).toISOString()).toBe(boundary);
    expect(isMember(g, record, utc(boundary) - 1)).toBe(true);
    expect(isMember(g, record, utc(boundary))).toBe(false);
  });

  it.each<[unit: "months" | "quarters" | "years", n: number, value: string, now: string, boundary: string]>([
    ["months", 1, "2023-03-15T08:00:00.000Z", "2023-01-01T00:00:00.000Z", "2023-02-15T08:00:00.000Z"],
    ["months", 1, "2023-03-31T08:00:00.000Z", "2023-01-01T00:00:00.000Z", "2023-03-01T00:00:00.000Z"],
    ["quarters", 1, "2024-02-29T08:00:00.000Z", "2023-06-01T00:00:00.000Z", "2023-11-29T08:00:00.000Z"],
    ["years", 1, "2025-02-28T08:00:00.000Z", "2023-06-01T00:00:00.000Z", "2024-02-28T08:00:00.000Z"],
  ])("relative_lt %s %i: %s enters the window at exactly the first instant it is in", (unit, n, value, now, boundary) => {
    const g = relGroup("relative_lt", n, unit);
    const record = { d: utc(value) };
    const b = nextBoundary(g, record, utc(now));
    expect(b === null ? null : new Date(b).toISOString()).toBe(boundary);
    expect(isMember(g, record, utc(boundary) - 1)).toBe(false);
    expect(isMember(g, record, utc(boundary))).toBe(true);
  });

  it("is null when a rule that never flips pins the answer", () => {
    const recent = { key: "d", type: "date", isArray: false, op: "relative_gt", relativeMatchNumber: 3, relativeMatchUnit: "days" } as const;
    const vip = { key: "vip", type: "boolean", isArray: false, op: "eq", match: true } as const;
    const record = { d: NOW - DAY, vip: false };
    expect(nextBoundary(group([recent, vip], "all"), record, NOW)).toBeNull();
    expect(nextBoundary(group([recent, vip], "any"), record, NOW)).toBe(NOW + 2 * DAY + 1);
    expect(nextBoundary(group([recent, vip], "any"), { ...record, vip: true }, NOW)).toBeNull();
    expect(nextBoundary(group([recent, vip], "all"), { ...record, vip: true }, NOW)).toBe(NOW + 2 * DAY + 1);
    // a relative rule whose values are all too old is pinned false as well
    const old = { ...recent, key: "e" };
    expect(nextBoundary(group([recent, old], "all"), { ...record, e: NOW - 9 * DAY }, NOW)).toBeNull();
  });
});

describe("compileGroup errors", () => {
  const tooMany: GroupRuleSpec[] = Array.from({ length: 11 }, () => ({ key: "a", type: "string", isArray: false, op: "exists" }));

  it("carries a stable code, the group id, the rule index and the field", () => {
    const error = compileError({ id: "vip", matchType: "all", rules: [{ key: "ltv", type: "integer", isArray: false, op: "like", match: "1%" }] });
    expect(error).toBeInstanceOf(GroupRuleError);
    expect(error.name).toBe("GroupRuleError");
    expect(error.code).toBe("GROUP_RULE_INVALID");
    expect(error.groupId).toBe("vip");
    expect(error.ruleIndex).toBe(0);
    expect(error.field).toBe("op");
    expect(error.problem).toBe("like is not valid for a property of type integer (valid: exists, notExists, eq, ne, gt, lt, gte, lte)");
    expect(error.message).toBe('group "vip" rules[0].op: like is not valid for a property of type integer (valid: exists, notExists, eq, ne, gt, lt, gte, lte)');
  });

  it("names the rule index past the first rule", () => {
    const error = compileError({
      id: "g",
      matchType: "any",
      rules: [
        { key: "a", type: "string", isArray: false, op: "exists" },
        { key: "flag", type: "boolean", isArray: false, op: "gt", match: true },
      ],
    });
    expect(error.ruleIndex).toBe(1);
    expect(error.message).toBe('group "g" rules[1].op: gt is not valid for a property of type boolean (valid: exists, notExists, eq, ne)');
  });

  it("refuses more than 10 rules and accepts exactly 10", () => {
    const error = compileError({ id: "g", matchType: "all", rules: tooMany });
    expect(error.ruleIndex).toBeNull();
    expect(error.message).toBe('group "g".rules: has 11 rules; at most 10 are allowed');
    expect(() => compileGroup({ id: "g", matchType: "all", rules: tooMany.slice(0, 10) })).not.toThrow();
  });

  it("refuses an unknown matchType", () => {
    expect(compileError({ id: "g", matchType: "some" as "all", rules: [] }).message).toBe('group "g".matchType: must be one of all, any (got "some")');
  });

  it.each<[rule: Partial<GroupRuleSpec>, field: string, problem: string]>([
    [{ type: "integer", op: "relative_gt" }, "op", "relative_gt is not valid for a property of type integer (valid: exists, notExists, eq, ne, gt, lt, gte, lte)"],
    [{ type: "string", op: "gt" }, "op", "gt is not valid for a property of type string (valid: exists, notExists, eq, ne, like, notLike, iLike, notILike, startsWith, endsWith, substring)"],
    [{ op: "between" as RuleOperator }, "op", 'must be one of exists, notExists, eq, ne, like, notLike, iLike, notILike, startsWith, endsWith, substring, gt, lt, gte, lte, relative_gt, relative_lt (got "between")'],
    [{ type: "text" as PropertyType }, "type", 'must be one of boolean, date, email, float, integer, phoneNumber, string, url (got "text")'],
    [{ key: "" }, "key", "must be a non-empty string"],
    [{ type: "date", op: "relative_gt", relativeMatchUnit: "days", match: undefined }, "relativeMatchNumber", "is required for relative_gt"],
    [{ type: "date", op: "relative_gt", relativeMatchNumber: -1, relativeMatchUnit: "days", match: undefined }, "relativeMatchNumber", "must be an integer from 0 to 100000 (got -1)"],
    [{ type: "date", op: "relative_lt", relativeMatchNumber: 1.5, relativeMatchUnit: "days", match: undefined }, "relativeMatchNumber", "must be an integer from 0 to 100000 (got 1.5)"],
    [{ type: "date", op: "relative_lt", relativeMatchNumber: 3, match: undefined }, "relativeMatchUnit", "is required for relative_lt"],
    [{ type: "date", op: "relative_lt", relativeMatchNumber: 3, relativeMatchUnit: "hours" as "days", match: undefined }, "relativeMatchUnit", 'must be one of days, weeks, months, quarters, years (got "hours")'],
    [{ type: "date", op: "relative_gt", relativeMatchNumber: 1, relativeMatchUnit: "days", match: null }, "match", "relative_gt takes relativeMatchNumber and relativeMatchUnit, not match"],
    [{ type: "integer", op: "gt", match: 1, relativeMatchNumber: 3 }, "relativeMatchNumber", "only applies to relative_gt and relative_lt (op is gt)"],
    [{ type: "integer", match: "abc" }, "match", '"abc" is not a number'],
    [{ type: "integer", match: "" }, "match", '"" is not a number'],
    [{ type: "integer", match: true }, "match", "true is not a number"],
    [{ type: "float", op: "gt", match: "1e400" }, "match", '"1e400" is not a number'],
    [{ type: "boolean", match: "yes" }, "match", '"yes" is not true or false'],
    [{ type: "boolean", match: 1 }, "match", "1 is not true or false"],
    [{ type: "date", match: "2021-02-30" }, "match", '"2021-02-30" is not an ISO-8601 date or epoch milliseconds'],
    [{ type: "date", op: "gt", match: "yesterday" }, "match", '"yesterday" is not an ISO-8601 date or epoch milliseconds'],
    [{ type: "date", match: "2024-01-01T24:00:00Z" }, "match", '"2024-01-01T24:00:00Z" is not an ISO-8601 date or epoch milliseconds'],
    [{ type: "date", match: 1.5 }, "match", "1.5 is not an ISO-8601 date or epoch milliseconds"],
    [{ op: "eq", match: undefined }, "match", "is required for eq"],
    [{ op: "like", match: undefined }, "match", "is required for like"],
    [{ type: "integer", op: "gt", match: null }, "match", "null can only be matched with eq or ne (op is gt)"],
    [{ op: "like", match: "null" }, "match", "null can only be matched with eq or ne (op is like)"],
    [{ op: "like", match: "ab\\" }, "match", 'pattern "ab\\\\" ends with the escape character \\'],
    [{ op: "exists", match: "whatever" }, "match", "exists takes no match"],
    [{ key: "grouparooCreatedAt", type: "string" }, "key", "top-level key grouparooCreatedAt has type date, not string"],
    [{ key: "grouparooId", isArray: true }, "key", "top-level key grouparooId is not an array"],
  ])("%j: %s %s", (rule, field, problem) => {
    expect(ruleError(rule)).toBe(`group "g" rules[0].${field}: ${problem}`);
    // The config validator reports exactly what the compiler refuses.
    const spec = { key: "p", type: "string", isArray: false, op: "eq", match: "x", ...rule } as GroupRuleSpec;
    expect(ruleProblems(spec)[0]).toEqual({ field, message: problem });
  });

  it("accepts null as the match of the relative operators' absent match only when it is absent", () => {
    expect(holds({ type: "date", op: "relative_gt", relativeMatchNumber: 1, relativeMatchUnit: "days" }, NOW)).toBe(true);
  });
});

