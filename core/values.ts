// Property values (ARCHITECTURE.md, "Domain semantics"): normalises a raw source value (a pg driver value, a JSON field, a
// CSV cell) into the stored form of a property type, or into null with the reason it was invalid.
// Pure: no I/O, no clock. The apply stage calls this for every mapped column of every change, so the
// hot path allocates no closures and keeps its regexes as module constants.

import { parsePhoneNumberFromString } from "libphonenumber-js";
import { MAX_EPOCH_MS, parseDateText } from "./dates.js";
import { PROPERTY_TYPES } from "./vocabulary.js";
import type { PropertyType, PropertyValue } from "./vocabulary.js";

export interface NormalizedValue {
  value: PropertyValue;
  /** why the raw value was stored as null, e.g. "Invalid integer value" */
  invalidReason?: string;
}

// Built once so an invalid value costs no string concatenation.
const REASONS = Object.fromEntries(PROPERTY_TYPES.map((type) => [type, `Invalid ${type} value`])) as Readonly<Record<PropertyType, string>>;

export const INVALID_VALUE_REASON = (type: PropertyType): string => REASONS[type];


const BOOLEAN_STRINGS: ReadonlyMap<string, boolean> = new Map([
  ["true", true],
  ["t", true],
  ["1", true],
  ["false", false],
  ["f", false],
  ["0", false],
]);

const INTEGER_RE = /^[+-]?\d+$/;
// Decimal only: Number() alone would also accept "0x10", "0b1", "Infinity" and "" (as 0).
const FLOAT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;
// No whitespace anywhere, one "@", a non-empty local part, and a domain of two or more non-empty labels.
const EMAIL_RE = /^[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+$/;

const MIN_SAFE_BIGINT = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

// Fresh objects rather than shared constants: callers own (and may mutate) what they get back.
function valid(value: PropertyValue): NormalizedValue {
  return { value };
}

function invalid(type: PropertyType): NormalizedValue {
  return { value: null, invalidReason: REASONS[type] };
}

function safeBigint(raw: bigint): number | null {
  return raw >= MIN_SAFE_BIGINT && raw <= MAX_SAFE_BIGINT ? Number(raw) : null;
}

/** -0 would compare and serialise differently from 0 although it is the same stored number. */
function noNegativeZero(n: number): number {
  return n === 0 ? 0 : n;
}

function normalizeBoolean(raw: unknown): NormalizedValue {
  if (typeof raw === "boolean") return valid(raw);
  if (typeof raw === "number") return raw === 1 ? valid(true) : raw === 0 ? valid(false) : invalid("boolean");
  if (typeof raw === "bigint") return raw === 1n ? valid(true) : raw === 0n ? valid(false) : invalid("boolean");
  if (typeof raw === "string") {
    const parsed = BOOLEAN_STRINGS.get(raw.trim().toLowerCase());
    return parsed === undefined ? invalid("boolean") : valid(parsed);
  }
  return invalid("boolean");
}

function normalizeInteger(raw: unknown): NormalizedValue {
  let n: number | null = null;
  if (typeof raw === "number") n = raw;
  else if (typeof raw === "bigint") n = safeBigint(raw);
  else if (typeof raw === "string") {
    const text = raw.trim();
    if (INTEGER_RE.test(text)) n = Number(text);
  }
  // A digit string past 2^53 rounds to a neighbour, so the safe-range check also rejects those.
  return n !== null && Number.isSafeInteger(n) ? valid(noNegativeZero(n)) : invalid("integer");
}

function normalizeFloat(raw: unknown): NormalizedValue {
  let n: number | null = null;
  if (typeof raw === "number") n = raw;
  else if (typeof raw === "bigint") n = safeBigint(raw);
  else if (typeof raw === "string") {
    const text = raw.trim();
    if (FLOAT_RE.test(text)) n = Number(text);
  }
  // "1e999" matches the pattern but overflows to Infinity.
  return n !== null && Number.isFinite(n) ? valid(noNegativeZero(n)) : invalid("float");
}

function normalizeDate(raw: unknown): NormalizedValue {
  let ms: number | null = null;
  if (raw instanceof Date) ms = raw.getTime();
  else if (typeof raw === "number") ms = raw;
  else if (typeof raw === "bigint") ms = safeBigint(raw);
  else if (typeof raw === "string") ms = parseDateText(raw.trim());
  // Dates are whole milliseconds; anything outside a Date's range cannot be shown or compared as one.
  if (ms === null || !Number.isFinite(ms) || Math.abs(ms) > MAX_EPOCH_MS) return invalid("date");
  return valid(noNegativeZero(Math.trunc(ms)));
}

function normalizeEmail(raw: unknown): NormalizedValue {
  if (typeof raw !== "string") return invalid("email");
  const email = raw.trim().toLowerCase();
  return EMAIL_RE.test(email) ? valid(email) : invalid("email");
}

function normalizeUrl(raw: unknown): NormalizedValue {
  if (typeof raw !== "string") return invalid("url");
  const url = raw.trim().toLowerCase();
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    return invalid("url");
  }
  // The stored value is the lower-cased text, not URL.href, so "http://x.com" does not gain a "/".
  return protocol === "http:" || protocol === "https:" ? valid(url) : invalid("url");
}

function normalizePhoneNumber(raw: unknown): NormalizedValue {
  let text: string;
  if (typeof raw === "string") text = raw;
  // A numeric column holding digits is still a phone number; fractions and exponents are not.
  else if ((typeof raw === "number" && Number.isSafeInteger(raw)) || typeof raw === "bigint") text = String(raw);
  else return invalid("phoneNumber");
  const phone = parsePhoneNumberFromString(text, "US");
  return phone !== undefined && phone.isValid() ? valid(phone.formatInternational()) : invalid("phoneNumber");
}

function isPlainObject(raw: object): boolean {
  const proto: unknown = Object.getPrototypeOf(raw);
  return proto === Object.prototype || proto === null;
}

function normalizeString(raw: unknown): NormalizedValue {
  switch (typeof raw) {
    case "string":
      return valid(raw);
    case "number":
    case "boolean":
    case "bigint":
      return valid(String(raw));
    case "object": {
      if (raw === null) return { value: null };
      if (raw instanceof Date) return Number.isNaN(raw.getTime()) ? invalid("string") : valid(raw.toISOString());
      if (!Array.isArray(raw) && !isPlainObject(raw)) return invalid("string");
      // JSON.stringify throws on cycles and nested bigints; either makes the value unstorable.
      try {
        return valid(JSON.stringify(raw));
      } catch {
        return invalid("string");
      }
    }
    default:
      return invalid("string");
  }
}

/** True for a string that is empty once trimmed: every type but `string` treats it as "no value". */
function isBlank(raw: unknown): boolean {
  return typeof raw === "string" && raw.trim() === "";
}

export function normalizeValue(type: PropertyType, raw: unknown): NormalizedValue {
  if (raw === null || raw === undefined) return { value: null };
  if (type === "string") return normalizeString(raw);
  if (isBlank(raw)) return { value: null };
  switch (type) {
    case "boolean":
      return normalizeBoolean(raw);
    case "integer":
      return normalizeInteger(raw);
    case "float":
      return normalizeFloat(raw);
    case "date":
      return normalizeDate(raw);
    case "email":
      return normalizeEmail(raw);
    case "url":
      return normalizeUrl(raw);
    case "phoneNumber":
      return normalizePhoneNumber(raw);
  }
}

/** For isArray properties: raw may be an array (each element normalised) or a scalar (one element);
 * null/undefined → []. Invalid elements are dropped and their reasons collected (one per element); null
 * elements are dropped silently, since an array property stores values, not holes. Order and duplicates
 * are kept. */
export function normalizeArray(type: PropertyType, raw: unknown): { values: PropertyValue[]; invalidReasons: string[] } {
  const values: PropertyValue[] = [];
  const invalidReasons: string[] = [];
  if (raw === null || raw === undefined) return { values, invalidReasons };
  if (!Array.isArray(raw)) {
    pushNormalized(type, raw, values, invalidReasons);
    return { values, invalidReasons };
  }
  const items: readonly unknown[] = raw;
  for (let i = 0; i < items.length; i++) pushNormalized(type, items[i], values, invalidReasons);
  return { values, invalidReasons };
}

function pushNormalized(type: PropertyType, raw: unknown, values: PropertyValue[], invalidReasons: string[]): void {
  const { value, invalidReason } = normalizeValue(type, raw);
  if (invalidReason !== undefined) invalidReasons.push(invalidReason);
  else if (value !== null) values.push(value);
}

/** Strings in UTF-16 code unit order, as `<` compares them (a record's group ids, row keys, remote names). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether two property values are equal: scalars by identity, arrays element by element, else by their JSON. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  return JSON.stringify(a) === JSON.stringify(b);
}
