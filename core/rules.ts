// Group rules (ARCHITECTURE.md, "Domain semantics"): compiles a group's rules once, then judges a record's membership at
// an instant, the enter/leave transition between two versions of a record, which groups a change can
// affect, and the next instant a relative-date rule can flip (the key of the time index, invariant 5).
// Pure: no I/O, no clock; `now` is always an argument.

import {
  MATCH_TYPES,
  MAX_GROUP_RULES,
  PROPERTY_TYPES,
  RELATIVE_UNITS,
  RULE_OPERATORS,
  RULE_OPERATORS_BY_TYPE,
  topLevelRuleType,
} from "./vocabulary.js";
import { civilFromDays, DAY_MS, daysFromCivil, parseDateMatch } from "./dates.js";
import type { MatchType, PropertyScalar, PropertyType, PropertyValue, RelativeUnit, RuleOperator } from "./vocabulary.js";

export interface GroupRuleSpec {
  /** A property id, or a top-level key "grouparooId" (type string) / "grouparooCreatedAt" (type date). */
  key: string;
  type: PropertyType;
  isArray: boolean;
  op: RuleOperator;
  /** `null` or the string "null" (any case, as Grouparoo) means SQL NULL. */
  match?: string | number | boolean | null;
  relativeMatchNumber?: number;
  relativeMatchUnit?: RelativeUnit;
}

export interface GroupSpec {
  id: string;
  matchType: MatchType;
  rules: readonly GroupRuleSpec[];
}

/** A record's values by key; a missing key is null. Array properties hold arrays. Dates are epoch ms numbers. */
export type RecordValues = Readonly<Record<string, PropertyValue | readonly PropertyValue[]>>;

/**
 * How a compiled rule is judged: `some` = at least one element passes `test`; `none` = no element
 * passes `test` (ne, notLike, notILike); `past` / `future` = relative_gt / relative_lt windows.
 */
export type RuleKind = "exists" | "notExists" | "some" | "none" | "past" | "future";

export interface CompiledRule {
  readonly index: number;
  /** A top-level key read from the record itself rather than its values: 1 grouparooId, 2 grouparooCreatedAt. */
  readonly top: 0 | 1 | 2;
  readonly key: string;
  readonly isArray: boolean;
  readonly op: RuleOperator;
  readonly kind: RuleKind;
  /** The positive element test for `some` / `none` (for `none` it is the test being negated). */
  readonly test: (element: PropertyScalar) => boolean;
  /** Relative rules: calendar units (months, quarters, years) shift by `spanMonths`, the others by `spanMs`. */
  readonly calendar: boolean;
  readonly spanMs: number;
  readonly spanMonths: number;
}

export interface CompiledGroup {
  readonly id: string;
  readonly matchType: MatchType;
  /** The keys the rules read: a change to any other key cannot change membership. */
  readonly reads: ReadonlySet<string>;
  readonly hasRelativeRules: boolean;
  readonly rules: readonly CompiledRule[];
  /**
   * The group's membership as one function of a record's values, compiled once (see compileMember);
   * absent for a group with relative-date rules or top-level keys, which isMember interprets.
   */
  readonly member?: (values: RecordValues) => boolean;
}

/** One problem of a group or rule: the field it is in (as config names it) and what is wrong. */
export interface RuleProblem {
  /** The field of the rule ("op", "match", ...), or of the group ("rules", "matchType") when ruleIndex is null. */
  field: string;
  message: string;
}

export class GroupRuleError extends Error {
  readonly code = "GROUP_RULE_INVALID" as const;
  readonly groupId: string;
  /** The 0-based index of the offending rule, or null for a problem with the group as a whole. */
  readonly ruleIndex: number | null;
  readonly field: string;
  readonly problem: string;

  constructor(groupId: string, ruleIndex: number | null, problem: RuleProblem) {
    super(`group ${show(groupId)}${ruleIndex === null ? "" : ` rules[${ruleIndex}]`}.${problem.field}: ${problem.message}`);
    this.name = "GroupRuleError";
    this.groupId = groupId;
    this.ruleIndex = ruleIndex;
    this.field = problem.field;
    this.problem = problem.message;
  }
}

export type Transition = "enter" | "leave" | "stay" | "none";

const WEEK_MS = 7 * DAY_MS;
/** Bounds relative spans so every window stays inside the Date range and exact in float arithmetic. */
const MAX_RELATIVE_NUMBER = 100_000;
const CALENDAR_MONTHS: Readonly<Record<RelativeUnit, number>> = { days: 0, weeks: 0, months: 1, quarters: 3, years: 12 };
const FIXED_MS: Readonly<Record<RelativeUnit, number>> = { days: DAY_MS, weeks: WEEK_MS, months: 0, quarters: 0, years: 0 };
const NEGATED_OPS: ReadonlySet<RuleOperator> = new Set<RuleOperator>(["ne", "notLike", "notILike"]);
const NEVER = (): boolean => false;

// ---------------------------------------------------------------------------------------------------
// Checking and compilation: `groupProblems` / `ruleProblems` are the only checks of a group's rules;
// the config validator reports what they find, and compileGroup refuses a group that has any.

/** Every problem of the group as a whole (its rules are checked by ruleProblems). */
export function groupProblems(spec: { matchType: string; rules: readonly unknown[] }): RuleProblem[] {
  const problems: RuleProblem[] = [];
  if (!(MATCH_TYPES as readonly string[]).includes(spec.matchType)) problems.push({ field: "matchType", message: `must be one of ${MATCH_TYPES.join(", ")} (got ${show(spec.matchType)})` });
  if (!Array.isArray(spec.rules)) problems.push({ field: "rules", message: "must be a list" });
  else if (spec.rules.length > MAX_GROUP_RULES) problems.push({ field: "rules", message: `has ${spec.rules.length} rules; at most ${MAX_GROUP_RULES} are allowed` });
  return problems;
}

/** Every problem of one rule, in the order a reader would fix them; none means it compiles. */
export function ruleProblems(spec: GroupRuleSpec): RuleProblem[] {
  const { key, type, op, match } = spec;
  const problems: RuleProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  if (typeof key !== "string" || key === "") return [{ field: "key", message: "must be a non-empty string" }];
  if (!(PROPERTY_TYPES as readonly string[]).includes(type)) return [{ field: "type", message: `must be one of ${PROPERTY_TYPES.join(", ")} (got ${show(type)})` }];
  if (!RULE_OPERATORS.includes(op)) return [{ field: "op", message: `must be one of ${RULE_OPERATORS.join(", ")} (got ${show(op)})` }];
  const topType = topLevelRuleType(key);
  if (topType !== undefined) {
    if (type !== topType) return [{ field: "key", message: `top-level key ${key} has type ${topType}, not ${type}` }];
    if (spec.isArray) return [{ field: "key", message: `top-level key ${key} is not an array` }];
  }
  const validOps = RULE_OPERATORS_BY_TYPE[type];
  if (!validOps.includes(op)) return [{ field: "op", message: `${op} is not valid for a property of type ${type} (valid: ${validOps.join(", ")})` }];

  if (op === "relative_gt" || op === "relative_lt") {
    const n = spec.relativeMatchNumber;
    const unit = spec.relativeMatchUnit;
    if (n === undefined) add("relativeMatchNumber", `is required for ${op}`);
    else if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > MAX_RELATIVE_NUMBER) add("relativeMatchNumber", `must be an integer from 0 to ${MAX_RELATIVE_NUMBER} (got ${show(n)})`);
    if (unit === undefined) add("relativeMatchUnit", `is required for ${op}`);
    else if (!(RELATIVE_UNITS as readonly string[]).includes(unit)) add("relativeMatchUnit", `must be one of ${RELATIVE_UNITS.join(", ")} (got ${show(unit)})`);
    if (match !== undefined) add("match", `${op} takes relativeMatchNumber and relativeMatchUnit, not match`);
    return problems;
  }
  for (const field of ["relativeMatchNumber", "relativeMatchUnit"] as const) {
    if (spec[field] !== undefined) add(field, `only applies to relative_gt and relative_lt (op is ${op})`);
  }
  if (op === "exists" || op === "notExists") {
    if (match !== undefined) add("match", `${op} takes no match`);
    return problems;
  }
  if (match === undefined) add("match", `is required for ${op}`);
  else if (isNullMatch(match)) {
    if (op !== "eq" && op !== "ne") add("match", `null can only be matched with eq or ne (op is ${op})`);
  } else {
    const problem = matchProblem(type, op, match);
    if (problem !== null) add("match", problem);
  }
  return problems;
}

/** `null` or the string "null" (any case, as Grouparoo) means SQL NULL. */
function isNullMatch(match: GroupRuleSpec["match"]): match is null | string {
  return match === null || (typeof match === "string" && match.toLowerCase() === "null");
}

/** Why a (non-null) match cannot be compared with values of this type, or null. */
function matchProblem(type: PropertyType, op: RuleOperator, match: string | number | boolean): string | null {
  switch (type) {
    case "boolean":
      return coerceBoolean(match) === null ? `${show(match)} is not true or false` : null;
    case "integer":
    case "float":
      return coerceNumber(match) === null ? `${show(match)} is not a number` : null;
    case "date":
      return parseDateMatch(match) === null ? `${show(match)} is not an ISO-8601 date or epoch milliseconds` : null;
    default:
      if ((op === "like" || op === "notLike" || op === "iLike" || op === "notILike") && likePattern(String(match), false) === null) {
        return `pattern ${show(String(match))} ends with the escape character \\`;
      }
      return null;
  }
}

export function compileGroup(spec: GroupSpec): CompiledGroup {
  const groupId = String(spec.id);
  const problem = groupProblems(spec)[0];
  if (problem) throw new GroupRuleError(groupId, null, problem);
  const rules = spec.rules.map((rule, index) => compileRule(groupId, index, rule));
  const hasRelativeRules = rules.some((r) => r.kind === "past" || r.kind === "future");
  const member = hasRelativeRules ? undefined : compileMember(rules, spec.matchType);
  return {
    id: groupId,
    matchType: spec.matchType,
    reads: new Set(rules.map((r) => r.key)),
    hasRelativeRules,
    rules,
    ...(member ? { member } : {}),
  };
}

/**
 * One function judging the whole group, generated once from its compiled rules, for groups whose rules
 * all read a property's value (no top-level keys; compileGroup passes no group with relative dates):
 * each property read by its own name, each rule's element test called from its own place.
 * Interpreting the rules (isMemberOf) costs about 50 ns a group of two rules; this, about 8. Only JSON
 * string literals of the property ids enter the generated text: match values reach it inside the
 * element tests, as arguments.
 */
function compileMember(rules: readonly CompiledRule[], matchType: MatchType): ((values: RecordValues) => boolean) | undefined {
  if (rules.length === 0 || rules.some((r) => r.top !== 0)) return undefined;
  const terms = rules.map((rule, i) => {
    const key = JSON.stringify(rule.key);
    // valueAt's reading: an own value, null when missing. A key a plain object inherits (`constructor`,
    // `__proto__`, ...) is read only when the values hold it; any other by name, which is 4 ns a rule
    // faster than asking Object.hasOwn first.
    const read = rule.key in Object.prototype ? `(v = Object.hasOwn(values, ${key}) ? (values[${key}] ?? null) : null)` : `(v = values[${key}] ?? null)`;
    const some = `(Array.isArray(v) ? someElement(v, t${i}) : t${i}(v))`;
    switch (rule.kind) {
      case "exists":
        return `(${read}, hasElement(v))`;
      case "notExists":
        return `(${read}, !hasElement(v))`;
      case "some":
        return `(${read}, v !== null && ${some})`;
      default:
        // none: a scalar NULL compares with nothing; an array property without values matches none.
        return rule.isArray ? `(${read}, v === null || !${some})` : `(${read}, v !== null && !${some})`;
    }
  });
  const body = `"use strict"; return function member(values) { let v; return ${terms.join(matchType === "all" ? " && " : " || ")}; };`;
  const tests = rules.map((_, i) => `t${i}`);
  const factory = new Function(...tests, "hasElement", "someElement", body) as (...args: unknown[]) => (values: RecordValues) => boolean;
  return factory(...rules.map((r) => r.test), hasElement, someElement);
}

function compileRule(groupId: string, index: number, spec: GroupRuleSpec): CompiledRule {
  const problem = ruleProblems(spec)[0];
  if (problem) throw new GroupRuleError(groupId, index, problem);
  const { key, type, op, match } = spec;
  const top: 0 | 1 | 2 = key === "grouparooId" ? 1 : key === "grouparooCreatedAt" ? 2 : 0;
  const base = { index, key, top, isArray: spec.isArray === true, op, test: NEVER, calendar: false, spanMs: 0, spanMonths: 0 };
  if (op === "exists" || op === "notExists") return { ...base, kind: op };
  if (op === "relative_gt" || op === "relative_lt") {
    const unit = spec.relativeMatchUnit as RelativeUnit;
    const count = spec.relativeMatchNumber as number;
    return {
      ...base,
      kind: op === "relative_gt" ? "past" : "future",
      calendar: CALENDAR_MONTHS[unit] > 0,
      spanMs: FIXED_MS[unit] * count,
      spanMonths: CALENDAR_MONTHS[unit] * count,
    };
  }
  // SQL NULL: `eq null` is IS NULL, `ne null` is IS NOT NULL; nothing else compares with NULL.
  if (isNullMatch(match as GroupRuleSpec["match"])) return { ...base, kind: op === "eq" ? "notExists" : "exists" };
  const kind: RuleKind = NEGATED_OPS.has(op) ? "none" : "some";
  return { ...base, kind, test: elementTest(type, op, match as string | number | boolean) };
}

/** Builds the positive element predicate once (the match was checked by ruleProblems), so evaluation never parses or allocates. */
function elementTest(type: PropertyType, op: RuleOperator, match: string | number | boolean): (element: PropertyScalar) => boolean {
  switch (type) {
    case "boolean": {
      const m = coerceBoolean(match);
      return (v) => v === m;
    }
    case "integer":
    case "float":
    case "date": {
      const m = (type === "date" ? parseDateMatch(match) : coerceNumber(match)) as number;
      switch (op) {
        case "gt":
          return (v) => typeof v === "number" && v > m;
        case "lt":
          return (v) => typeof v === "number" && v < m;
        case "gte":
          return (v) => typeof v === "number" && v >= m;
        case "lte":
          return (v) => typeof v === "number" && v <= m;
        default:
          return (v) => v === m;
      }
    }
    default: {
      const m = String(match);
      switch (op) {
        case "like":
        case "notLike":
        case "iLike":
        case "notILike": {
          const re = likePattern(m, op === "iLike" || op === "notILike") as RegExp;
          return (v) => typeof v === "string" && re.test(v);
        }
        case "startsWith":
          return (v) => typeof v === "string" && v.startsWith(m);
        case "endsWith":
          return (v) => typeof v === "string" && v.endsWith(m);
        case "substring":
          return (v) => typeof v === "string" && v.includes(m);
        default:
          return (v) => v === m;
      }
    }
  }
}

function coerceBoolean(match: string | number | boolean): boolean | null {
  if (match === true || match === "true") return true;
  if (match === false || match === "false") return false;
  return null;
}

function coerceNumber(match: string | number | boolean): number | null {
  if (typeof match === "boolean") return null;
  if (typeof match === "string" && match.trim() === "") return null; // Number("") is 0, not a match value
  const n = Number(match);
  return Number.isFinite(n) ? n : null;
}

const REGEXP_SYNTAX = /[\\^$.*+?()[\]{}|/]/;

/**
 * SQL LIKE as an anchored regular expression: `%` any run, `_` one character, `\` escapes the next
 * character (Postgres's default); everything else is literal. Null when the pattern ends in a lone `\`.
 */
function likePattern(pattern: string, ignoreCase: boolean): RegExp | null {
  let source = "^";
  let escaped = false;
  let lastWasAnyRun = false;
  for (const c of pattern) {
    if (escaped) {
      source += REGEXP_SYNTAX.test(c) ? `\\${c}` : c;
      escaped = false;
      lastWasAnyRun = false;
    } else if (c === "\\") {
      escaped = true;
    } else if (c === "%") {
      // Consecutive %s mean the same; collapsing them keeps backtracking down.
      if (!lastWasAnyRun) source += "[\\s\\S]*";
      lastWasAnyRun = true;
    } else {
      source += c === "_" ? "[\\s\\S]" : REGEXP_SYNTAX.test(c) ? `\\${c}` : c;
      lastWasAnyRun = false;
    }
  }
  if (escaped) return null;
  return new RegExp(`${source}$`, ignoreCase ? "iu" : "u");
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "number") return String(value);
  return JSON.stringify(value) ?? String(value);
}

// ---------------------------------------------------------------------------------------------------
// Evaluation (runs per change: loops, no closures or allocation)

// The record's own id and creation instant while one record is evaluated (top-level rule keys), so
// evaluation needs no copy of its values with them added. Synchronous and never re-entered.
let topId: string | undefined;
let topCreatedAt: number | undefined;

/**
 * Whether a record is a member at `now`. The top-level keys (grouparooId, grouparooCreatedAt) are read
 * from `id` and `createdAt` when given, else from the values.
 */
export function isMember(group: CompiledGroup, record: RecordValues | null, now: number, id?: string, createdAt?: number): boolean {
  if (record === null) return false;
  if (group.member) return group.member(record);
  return isMemberOf(group, record, now, id, createdAt);
}

/** isMember by interpreting the rules one by one: the reference a group's compiled `member` is tested against. */
export function isMemberOf(group: CompiledGroup, record: RecordValues, now: number, id?: string, createdAt?: number): boolean {
  const rules = group.rules;
  if (rules.length === 0) return false;
  topId = id;
  topCreatedAt = createdAt;
  if (group.matchType === "all") {
    for (let i = 0; i < rules.length; i++) if (!ruleHolds(rules[i] as CompiledRule, record, now)) return false;
    return true;
  }
  for (let i = 0; i < rules.length; i++) if (ruleHolds(rules[i] as CompiledRule, record, now)) return true;
  return false;
}

export function transition(group: CompiledGroup, before: RecordValues | null, after: RecordValues | null, now: number): Transition {
  const was = isMember(group, before, now);
  const is = isMember(group, after, now);
  if (was) return is ? "stay" : "leave";
  return is ? "enter" : "none";
}

/** Which of the groups read at least one of the changed keys: only these need re-evaluation after a change. */
export function groupsAffectedBy(groups: readonly CompiledGroup[], changedKeys: Iterable<string>): CompiledGroup[] {
  const keys = Array.isArray(changedKeys) ? (changedKeys as readonly string[]) : [...changedKeys];
  const affected: CompiledGroup[] = [];
  for (const group of groups) {
    for (const key of keys) {
      if (group.reads.has(key)) {
        affected.push(group);
        break;
      }
    }
  }
  return affected;
}

type RuleInput = PropertyValue | readonly PropertyValue[];

function valueAt(record: RecordValues, rule: CompiledRule): RuleInput {
  if (rule.top === 1 && topId !== undefined) return topId;
  if (rule.top === 2 && topCreatedAt !== undefined) return topCreatedAt;
  const key = rule.key;
  // hasOwn: a property id such as "constructor" must not read Object.prototype.
  return Object.hasOwn(record, key) ? (record[key] ?? null) : null;
}

function isList(value: RuleInput): value is readonly PropertyValue[] {
  return Array.isArray(value);
}

function ruleHolds(rule: CompiledRule, record: RecordValues, now: number): boolean {
  const value = valueAt(record, rule);
  switch (rule.kind) {
    case "exists":
      return hasElement(value);
    case "notExists":
      return !hasElement(value);
    case "some":
      return someElement(value, rule.test);
    case "none":
      // A scalar NULL compares with nothing (SQL); an array property without values has no element
      // that matches, so "none matches" holds (Grouparoo counts never-set array properties too).
      if (value === null && !rule.isArray) return false;
      return !someElement(value, rule.test);
    case "past":
      return someWithin(value, rule.calendar ? shiftMonths(now, -rule.spanMonths) : now - rule.spanMs, now);
    case "future":
      return someWithin(value, now, rule.calendar ? shiftMonths(now, rule.spanMonths) : now + rule.spanMs);
  }
}

function hasElement(value: RuleInput): boolean {
  if (value === null) return false;
  if (!isList(value)) return true;
  for (let i = 0; i < value.length; i++) if (value[i] != null) return true;
  return false;
}

function someElement(value: RuleInput, test: (element: PropertyScalar) => boolean): boolean {
  if (value === null) return false;
  if (!isList(value)) return test(value);
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    if (element != null && test(element)) return true;
  }
  return false;
}

function someWithin(value: RuleInput, lo: number, hi: number): boolean {
  if (value === null) return false;
  if (!isList(value)) return typeof value === "number" && value >= lo && value <= hi;
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    if (typeof element === "number" && element >= lo && element <= hi) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// The time index's key: when can a relative rule next flip?

/**
 * The earliest instant strictly after `now` at which isMember(group, record, t) can differ from
 * isMember(group, record, now) because of relative-date rules; null when no relative rule can ever
 * change the answer for this record. Exact per element; the group answer may not change there (the
 * caller re-evaluates), but it never changes earlier.
 */
export function nextBoundary(group: CompiledGroup, record: RecordValues | null, now: number, id?: string, createdAt?: number): number | null {
  if (record === null || !group.hasRelativeRules) return null;
  topId = id;
  topCreatedAt = createdAt;
  const all = group.matchType === "all";
  let best = Infinity;
  for (const rule of group.rules) {
    const value = valueAt(record, rule);
    const flip = rule.kind === "past" || rule.kind === "future" ? ruleNextFlip(rule, value, now) : Infinity;
    if (flip === Infinity) {
      // A rule that never flips again pins the group: false under "all", true under "any".
      if (ruleHolds(rule, record, now) !== all) return null;
    } else if (flip < best) {
      best = flip;
    }
  }
  return best === Infinity ? null : best;
}

function ruleNextFlip(rule: CompiledRule, value: RuleInput, now: number): number {
  if (value === null) return Infinity;
  if (!isList(value)) return typeof value === "number" && Number.isFinite(value) ? elementNextFlip(rule, value, now) : Infinity;
  let best = Infinity;
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    if (typeof element === "number" && Number.isFinite(element)) {
      const flip = elementNextFlip(rule, element, now);
      if (flip < best) best = flip;
    }
  }
  return best;
}

/**
 * The set of instants t at which one value v is inside the rule's window, as ordered intervals, and
 * its first edge after `now`. relative_gt holds when shift(t, -N) <= v <= t, relative_lt when
 * t <= v <= shift(t, +N). For fixed units that is one interval. For calendar units shift() is t plus a
 * per-day constant, and only within the one source month that maps onto v's month does it matter how:
 * its days up to the target month's length shift by one constant, and each longer day is clamped onto
 * the target's last day (a sawtooth, so the rule can flip several times in those days). Earlier and
 * later months are wholly in or out. So at most five intervals, no search.
 */
function elementNextFlip(rule: CompiledRule, v: number, now: number): number {
  const past = rule.kind === "past";
  scanBegin(now);
  if (!rule.calendar) {
    if (past) scanAdd(v, v + rule.spanMs);
    else scanAdd(v - rule.spanMs, v);
    return scanEnd();
  }
  splitUtc(v);
  const targetMonth = splitMonth;
  const sourceMonth = past ? targetMonth + rule.spanMonths : targetMonth - rule.spanMonths;
  const targetStart = monthStartDay(targetMonth);
  const targetLength = monthStartDay(targetMonth + 1) - targetStart;
  const sourceStart = monthStartDay(sourceMonth);
  const sourceLength = monthStartDay(sourceMonth + 1) - sourceStart;
  const sourceStartMs = sourceStart * DAY_MS;
  // Before the source month shift(t, -N) lies before v's month: in the window once t >= v.
  if (past) scanAdd(v, sourceStartMs - 1);
  const unclamped = Math.min(targetLength, sourceLength);
  addPiece(past, v, sourceStartMs, sourceStartMs + unclamped * DAY_MS - 1, (targetStart - sourceStart) * DAY_MS);
  for (let day = targetLength + 1; day <= sourceLength; day++) {
    const dayStartMs = sourceStartMs + (day - 1) * DAY_MS;
    addPiece(past, v, dayStartMs, dayStartMs + DAY_MS - 1, (targetStart + targetLength - day - sourceStart) * DAY_MS);
  }
  // After the source month shift(t, +N) lies after v's month: in the window until t passes v.
  if (!past) scanAdd((sourceStart + sourceLength) * DAY_MS, v);
  return scanEnd();
}

/** On [lo, hi] shift(t) = t + offset: the part of it where v is in the window. */
function addPiece(past: boolean, v: number, lo: number, hi: number, offset: number): void {
  if (past) scanAdd(Math.max(lo, v), Math.min(hi, v - offset));
  else scanAdd(Math.max(lo, v - offset), Math.min(hi, v));
}

// Interval scan: intervals arrive in increasing order; adjacent ones merge; each merged run's start
// and end+1 are its edges, and the first edge after `now` is the answer. Module-level scratch keeps
// it allocation-free; it is safe because the functions are synchronous and never re-entered.
let scanNow = 0;
let scanFound = Infinity;
let runOpen = false;
let runStart = 0;
let runEnd = 0;

function scanBegin(now: number): void {
  scanNow = now;
  scanFound = Infinity;
  runOpen = false;
}

function scanAdd(from: number, to: number): void {
  const s = Math.ceil(from);
  const e = Math.floor(to);
  if (s > e || scanFound !== Infinity) return; // edges come in order: the first one found is the earliest
  if (runOpen) {
    if (s <= runEnd + 1) {
      if (e > runEnd) runEnd = e;
      return;
    }
    scanEdge(runStart);
    scanEdge(runEnd + 1);
  }
  runOpen = true;
  runStart = s;
  runEnd = e;
}

function scanEdge(t: number): void {
  if (t > scanNow && t < scanFound) scanFound = t;
}

function scanEnd(): number {
  if (runOpen) {
    scanEdge(runStart);
    scanEdge(runEnd + 1);
    runOpen = false;
  }
  return scanFound;
}

// ---------------------------------------------------------------------------------------------------
// UTC calendar arithmetic without Date objects (core/dates.ts).

/** Months counted from year 0 (year * 12 + month - 1), day of month, and ms into the day of the last split. */
let splitMonth = 0;
let splitDay = 0;
let splitTimeOfDay = 0;

function splitUtc(t: number): void {
  const days = Math.floor(t / DAY_MS);
  splitTimeOfDay = t - days * DAY_MS;
  const [year, month, day] = civilFromDays(days);
  splitDay = day;
  splitMonth = year * 12 + month - 1;
}

function monthStartDay(month: number): number {
  const year = Math.floor(month / 12);
  return daysFromCivil(year, month - year * 12 + 1, 1);
}

/** t moved by `months` calendar months in UTC: same day of month and time, clamped to the month's last day. */
function shiftMonths(t: number, months: number): number {
  splitUtc(t);
  const month = splitMonth + months;
  const start = monthStartDay(month);
  const day = Math.min(splitDay, monthStartDay(month + 1) - start);
  return (start + day - 1) * DAY_MS + splitTimeOfDay;
}
