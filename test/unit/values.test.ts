// Property values: the exact normalised form of valid raw values for every property type, the exact
// reason for invalid ones, null/undefined/"" handling, and array properties mixing valid and invalid
// elements.
import { describe, expect, it } from "vitest";
import { INVALID_VALUE_REASON, normalizeArray, normalizeValue } from "../../core/values.js";
import { PROPERTY_TYPES } from "../../core/vocabulary.js";
import type { PropertyType, PropertyValue } from "../../core/vocabulary.js";

const utc = (iso: string): number => {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) throw new Error(`bad test date ${iso}`);
  return t;
};

// A failure message naming the raw input; symbols and null-prototype objects cannot go through String().
function label(type: PropertyType, raw: unknown): string {
  try {
    return `${type} ${String(raw)}`;
  } catch {
    return `${type} ${typeof raw}`;
  }
}

function expectValid(type: PropertyType, cases: ReadonlyArray<readonly [raw: unknown, expected: PropertyValue]>): void {
  for (const [raw, expected] of cases) {
    expect(normalizeValue(type, raw), label(type, raw)).toStrictEqual({ value: expected });
  }
}

function expectInvalid(type: PropertyType, raws: readonly unknown[]): void {
  for (const raw of raws) {
    expect(normalizeValue(type, raw), label(type, raw)).toStrictEqual({
      value: null,
      invalidReason: `Invalid ${type} value`,
    });
  }
}

describe("INVALID_VALUE_REASON", () => {
  it("names the type as 'Invalid <type> value'", () => {
    expect(INVALID_VALUE_REASON("phoneNumber")).toBe("Invalid phoneNumber value");
    expect(INVALID_VALUE_REASON("integer")).toBe("Invalid integer value");
    for (const type of PROPERTY_TYPES) expect(INVALID_VALUE_REASON(type)).toBe(`Invalid ${type} value`);
  });
});

describe("missing values", () => {
  it("stores null and undefined as null with no reason, for every type", () => {
    for (const type of PROPERTY_TYPES) {
      expect(normalizeValue(type, null)).toStrictEqual({ value: null });
      expect(normalizeValue(type, undefined)).toStrictEqual({ value: null });
    }
  });

  it("stores the empty string as null with no reason for every type but string", () => {
    for (const type of PROPERTY_TYPES) {
      if (type === "string") continue;
      expect(normalizeValue(type, ""), type).toStrictEqual({ value: null });
    }
  });

  it("treats a whitespace-only string as empty for every type but string", () => {
    for (const type of PROPERTY_TYPES) {
      if (type === "string") continue;
      expect(normalizeValue(type, "   "), type).toStrictEqual({ value: null });
      expect(normalizeValue(type, "\t\n"), type).toStrictEqual({ value: null });
    }
  });

  it("keeps the empty and whitespace-only strings as they are for string", () => {
    expect(normalizeValue("string", "")).toStrictEqual({ value: "" });
    expect(normalizeValue("string", "  ")).toStrictEqual({ value: "  " });
  });

  it("never attaches an invalidReason key to a valid value", () => {
    expect(Object.keys(normalizeValue("integer", 1))).toEqual(["value"]);
    expect(Object.keys(normalizeValue("integer", null))).toEqual(["value"]);
  });

  it("returns a fresh object each call, so callers may mutate it", () => {
    const a = normalizeValue("integer", "x");
    a.invalidReason = "changed";
    expect(normalizeValue("integer", "x")).toStrictEqual({ value: null, invalidReason: "Invalid integer value" });
  });
});

describe("boolean", () => {
  it("keeps true and false", () => {
    expectValid("boolean", [
      [true, true],
      [false, false],
    ]);
  });

  it("reads the numbers 1 and 0 (and bigints 1n and 0n)", () => {
    expectValid("boolean", [
      [1, true],
      [0, false],
      [-0, false],
      [1n, true],
      [0n, false],
    ]);
  });

  it("reads true/false/1/0/t/f strings, case-insensitive and trimmed", () => {
    expectValid("boolean", [
      ["true", true],
      ["false", false],
      ["TRUE", true],
      ["False", false],
      ["1", true],
      ["0", false],
      ["t", true],
      ["f", false],
      ["T", true],
      ["F", false],
      ["  true  ", true],
      ["\tf\n", false],
    ]);
  });

  it("rejects other numbers, words and objects as 'Invalid boolean value'", () => {
    expectInvalid("boolean", [2, -1, 0.5, NaN, Infinity, 2n, "yes", "no", "y", "n", "on", "2", "1.0", "tru", "truee", "01", {}, [], [true], new Date(0)]);
  });
});

describe("integer", () => {
  it("keeps safe integer numbers, normalising -0 to 0", () => {
    expectValid("integer", [
      [0, 0],
      [42, 42],
      [-7, -7],
      [4.0, 4],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
      [Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER],
    ]);
    expect(Object.is(normalizeValue("integer", -0).value, 0)).toBe(true);
  });

  it("converts bigints within the safe range", () => {
    expectValid("integer", [
      [0n, 0],
      [123n, 123],
      [-123n, -123],
      [9007199254740991n, 9007199254740991],
      [-9007199254740991n, -9007199254740991],
    ]);
  });

  it("parses integer strings, trimmed, with an optional sign", () => {
    expectValid("integer", [
      ["42", 42],
      ["-7", -7],
      ["+5", 5],
      [" 12 ", 12],
      ["007", 7],
      ["0", 0],
      ["-0", 0],
      ["9007199254740991", 9007199254740991],
    ]);
    expect(Object.is(normalizeValue("integer", "-0").value, 0)).toBe(true);
  });

  it("rejects fractions, exponents, non-decimal forms and words as 'Invalid integer value'", () => {
    expectInvalid("integer", [1.5, -0.1, "4.0", "4.", "1e3", "1.5", "0x10", "0b1", "12abc", "abc", "1 2", "--1", "+", "-", "Infinity", true, false, {}, [1], new Date(0)]);
  });

  it("rejects non-finite numbers as 'Invalid integer value'", () => {
    expectInvalid("integer", [NaN, Infinity, -Infinity]);
  });

  it("rejects numbers, bigints and strings outside the safe integer range", () => {
    expectInvalid("integer", [
      Number.MAX_SAFE_INTEGER + 1,
      Number.MIN_SAFE_INTEGER - 1,
      1e20,
      9007199254740992n,
      -9007199254740992n,
      "9007199254740992",
      "9007199254740993",
      "-9007199254740992",
      "123456789012345678901234567890",
    ]);
  });
});

describe("float", () => {
  it("keeps finite numbers, normalising -0 to 0", () => {
    expectValid("float", [
      [0, 0],
      [1.5, 1.5],
      [-2.25, -2.25],
      [42, 42],
      [1e300, 1e300],
      [Number.MIN_VALUE, Number.MIN_VALUE],
    ]);
    expect(Object.is(normalizeValue("float", -0).value, 0)).toBe(true);
  });

  it("parses decimal strings, trimmed, including exponent forms", () => {
    expectValid("float", [
      ["1.5", 1.5],
      ["-2.25", -2.25],
      ["+3", 3],
      ["42", 42],
      [" 0.5 ", 0.5],
      [".5", 0.5],
      ["5.", 5],
      ["1.5e3", 1500],
      ["1.5E3", 1500],
      ["2e-3", 0.002],
      ["-1e+2", -100],
      ["-0.0", 0],
    ]);
  });

  it("converts bigints within the safe range", () => {
    expectValid("float", [
      [10n, 10],
      [-9007199254740991n, -9007199254740991],
    ]);
  });

  it("rejects NaN, Infinity and non-numeric strings as 'Invalid float value'", () => {
    expectInvalid("float", [NaN, Infinity, -Infinity, "NaN", "Infinity", "-Infinity", "1e999", "0x10", "0b1", "1,5", "1.2.3", "e3", "1e", ".", "abc", "1 000", true, {}, [1.5]]);
  });

  it("rejects bigints outside the safe range", () => {
    expectInvalid("float", [9007199254740992n, -9007199254740992n]);
  });
});

describe("date", () => {
  it("converts a valid Date to epoch milliseconds", () => {
    expectValid("date", [
      [new Date(0), 0],
      [new Date("2024-01-02T03:04:05.678Z"), utc("2024-01-02T03:04:05.678Z")],
    ]);
  });

  it("keeps finite numbers as epoch milliseconds, truncating fractions", () => {
    expectValid("date", [
      [0, 0],
      [1704164645000, 1704164645000],
      [-86400000, -86400000],
      [1704164645000.9, 1704164645000],
      [8.64e15, 8.64e15],
    ]);
  });

  it("parses ISO-8601 date-only strings as UTC midnight", () => {
    expectValid("date", [
      ["2024-01-02", utc("2024-01-02T00:00:00Z")],
      ["1970-01-01", 0],
      ["2024-02-29", utc("2024-02-29T00:00:00Z")],
      [" 2024-01-02 ", utc("2024-01-02T00:00:00Z")],
    ]);
  });

  it("parses ISO-8601 date-times with Z and numeric offsets", () => {
    expectValid("date", [
      ["2024-01-02T03:04:05Z", utc("2024-01-02T03:04:05Z")],
      ["2024-01-02T03:04:05.123+02:00", utc("2024-01-02T01:04:05.123Z")],
      ["2024-01-02T03:04:05-05:00", utc("2024-01-02T08:04:05Z")],
      ["2024-01-02T03:04Z", utc("2024-01-02T03:04:00Z")],
      ["2024-01-02t03:04:05z", utc("2024-01-02T03:04:05Z")],
      ["2024-01-02T03:04:05.5Z", utc("2024-01-02T03:04:05.500Z")],
    ]);
  });

  it("reads date-times without a zone as UTC", () => {
    expectValid("date", [
      ["2024-01-02T03:04:05", utc("2024-01-02T03:04:05Z")],
      ["2024-01-02 03:04:05", utc("2024-01-02T03:04:05Z")],
      ["2024-01-02T03:04:05.123", utc("2024-01-02T03:04:05.123Z")],
    ]);
  });

  it("parses Postgres timestamp and timestamptz text forms", () => {
    expectValid("date", [
      ["2024-01-02 03:04:05", utc("2024-01-02T03:04:05Z")],
      ["2024-01-02 03:04:05+00", utc("2024-01-02T03:04:05Z")],
      ["2024-01-02 03:04:05+05:30", utc("2024-01-01T21:34:05Z")],
      ["2024-01-02 03:04:05-08", utc("2024-01-02T11:04:05Z")],
      ["2024-01-02 03:04:05+0530", utc("2024-01-01T21:34:05Z")],
      ["1883-11-18 12:00:00-04:56:02", utc("1883-11-18T16:56:02Z")],
    ]);
  });

  it("truncates microseconds (and finer) to milliseconds rather than rounding", () => {
    expectValid("date", [
      ["2024-01-02 03:04:05.123456+00", utc("2024-01-02T03:04:05.123Z")],
      ["2024-01-02 03:04:05.999999", utc("2024-01-02T03:04:05.999Z")],
      ["2024-01-02T03:04:05.123456789Z", utc("2024-01-02T03:04:05.123Z")],
    ]);
  });

  it("handles years before 1970 and before 100 AD without Date.UTC's 1900 shift", () => {
    expectValid("date", [
      ["1969-12-31T23:59:59.999Z", -1],
      ["1900-03-01", utc("1900-03-01T00:00:00Z")],
      ["0050-06-15", new Date(0).setUTCFullYear(50, 5, 15)],
      ["0000-01-01", new Date(0).setUTCFullYear(0, 0, 1)],
    ]);
  });

  it("converts bigints within the safe range as epoch milliseconds", () => {
    expectValid("date", [[1704164645000n, 1704164645000]]);
  });

  it("rejects impossible calendar dates and times as 'Invalid date value'", () => {
    expectInvalid("date", [
      "2024-13-01",
      "2024-00-10",
      "2024-02-30",
      "2023-02-29",
      "2024-04-31",
      "2024-01-00",
      "2024-01-02T24:00:00Z",
      "2024-01-02T23:60:00Z",
      "2024-01-02T23:59:60Z",
      "2024-01-02T03:04:05+24:00",
      "2024-01-02T03:04:05+05:60",
    ]);
  });

  it("rejects text that Date.parse would leniently accept", () => {
    expectInvalid("date", ["hello 2", "January 2, 2024", "Tue Jan 02 2024", "2024/01/02", "01/02/2024", "2024-1-2", "2024", "2024-01", "20240102", "1704164645000", "2024-01-02Z", "2024-01-02T03", "2024-01-02T03:04:05 Z", "2024-01-02T03:04:05.Z", "infinity", "now"]);
  });

  it("rejects invalid Dates, non-finite numbers and out-of-range epochs", () => {
    expectInvalid("date", [new Date(NaN), NaN, Infinity, -Infinity, 8.64e15 + 1, -8.64e15 - 1, 9007199254740992n, true, {}, [0]]);
  });
});

describe("email", () => {
  it("trims and lower-cases valid addresses", () => {
    expectValid("email", [
      ["person@example.com", "person@example.com"],
      ["  Person@Example.COM ", "person@example.com"],
      ["first.last+tag@mail.example.co.uk", "first.last+tag@mail.example.co.uk"],
      ["a@b.c", "a@b.c"],
    ]);
  });

  it("rejects addresses without exactly one @, a local part and a dotted domain as 'Invalid email value'", () => {
    expectInvalid("email", [
      "person",
      "person@",
      "@example.com",
      "person@example",
      "person@@example.com",
      "a@b@example.com",
      "person@exa mple.com",
      "per son@example.com",
      "person@.com",
      "person@example.",
      "person@example..com",
    ]);
  });

  it("rejects non-string values", () => {
    expectInvalid("email", [42, true, 1n, {}, ["a@b.com"], new Date(0)]);
  });
});

describe("url", () => {
  it("trims and lower-cases valid http and https URLs without otherwise rewriting them", () => {
    expectValid("url", [
      ["https://example.com", "https://example.com"],
      ["HTTP://Example.COM/Path?Q=1", "http://example.com/path?q=1"],
      ["  https://www.example.com/a/b#Frag  ", "https://www.example.com/a/b#frag"],
      ["http://localhost:8080", "http://localhost:8080"],
      ["https://user:pw@example.com/", "https://user:pw@example.com/"],
    ]);
  });

  it("rejects other protocols as 'Invalid url value'", () => {
    expectInvalid("url", ["ftp://example.com", "mailto:person@example.com", "javascript:alert(1)", "file:///etc/passwd", "data:text/plain,hi", "ws://example.com"]);
  });

  it("rejects text that new URL() cannot parse", () => {
    expectInvalid("url", ["example.com", "www.example.com/path", "not a url", "http://", "https://exa mple.com", "//example.com"]);
  });

  it("rejects non-string values", () => {
    expectInvalid("url", [42, true, {}, ["https://example.com"]]);
  });
});

describe("phoneNumber", () => {
  it("formats valid numbers internationally, defaulting to the US", () => {
    expectValid("phoneNumber", [
      ["4155552671", "+1 415 555 2671"],
      ["(415) 555-2671", "+1 415 555 2671"],
      ["415-555-2671", "+1 415 555 2671"],
      ["1-415-555-2671", "+1 415 555 2671"],
      ["+1 415 555 2671", "+1 415 555 2671"],
      ["  +14155552671  ", "+1 415 555 2671"],
    ]);
  });

  it("keeps numbers from other countries in their own international format", () => {
    expectValid("phoneNumber", [
      ["+44 20 7946 0958", "+44 20 7946 0958"],
      ["+442079460958", "+44 20 7946 0958"],
      ["+49 30 901820", "+49 30 901820"],
    ]);
  });

  it("reads integer numbers and bigints as digit strings", () => {
    expectValid("phoneNumber", [
      [4155552671, "+1 415 555 2671"],
      [14155552671n, "+1 415 555 2671"],
    ]);
  });

  it("rejects unparseable and invalid numbers as 'Invalid phoneNumber value'", () => {
    expectInvalid("phoneNumber", ["hello", "123", "+", "+1 555 555 5555", "020 7946 0958", "not a phone"]);
  });

  it("rejects non-integer numbers and other non-string values", () => {
    expectInvalid("phoneNumber", [4155552671.5, NaN, true, {}, ["4155552671"]]);
  });
});

describe("string", () => {
  it("keeps strings exactly, without trimming", () => {
    expectValid("string", [
      ["hello", "hello"],
      ["  padded  ", "  padded  "],
      ["MiXeD", "MiXeD"],
      ["null", "null"],
    ]);
  });

  it("converts numbers, booleans and bigints with String()", () => {
    expectValid("string", [
      [42, "42"],
      [1.5, "1.5"],
      [-0, "0"],
      [true, "true"],
      [false, "false"],
      [12345678901234567890n, "12345678901234567890"],
    ]);
  });

  it("converts a Date to its ISO string", () => {
    expectValid("string", [[new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)), "2024-01-02T03:04:05.006Z"]]);
  });

  it("serialises plain objects and arrays as JSON", () => {
    expectValid("string", [
      [{ a: 1, b: "x" }, '{"a":1,"b":"x"}'],
      [[1, "two", null], '[1,"two",null]'],
      [{}, "{}"],
      [[], "[]"],
      [Object.assign(Object.create(null) as object, { k: true }), '{"k":true}'],
    ]);
  });

  it("rejects invalid Dates, unserialisable objects, class instances, symbols and functions as 'Invalid string value'", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectInvalid("string", [new Date(NaN), cyclic, { n: 1n }, new Map([["a", 1]]), Symbol("s"), () => 1]);
  });
});

describe("normalizeArray", () => {
  it("returns no values for null and undefined", () => {
    expect(normalizeArray("integer", null)).toStrictEqual({ values: [], invalidReasons: [] });
    expect(normalizeArray("string", undefined)).toStrictEqual({ values: [], invalidReasons: [] });
  });

  it("normalises each element of an array, keeping order and duplicates", () => {
    expect(normalizeArray("integer", ["1", 2, "2", 3n])).toStrictEqual({ values: [1, 2, 2, 3], invalidReasons: [] });
    expect(normalizeArray("email", ["A@X.com", " b@y.org "])).toStrictEqual({ values: ["a@x.com", "b@y.org"], invalidReasons: [] });
  });

  it("treats a scalar as one element", () => {
    expect(normalizeArray("boolean", "t")).toStrictEqual({ values: [true], invalidReasons: [] });
    expect(normalizeArray("date", "2024-01-02")).toStrictEqual({ values: [utc("2024-01-02T00:00:00Z")], invalidReasons: [] });
    expect(normalizeArray("integer", "x")).toStrictEqual({ values: [], invalidReasons: ["Invalid integer value"] });
  });

  it("drops invalid elements and collects one reason per invalid element", () => {
    expect(normalizeArray("integer", ["1", "x", 2.5, "3"])).toStrictEqual({
      values: [1, 3],
      invalidReasons: ["Invalid integer value", "Invalid integer value"],
    });
    expect(normalizeArray("url", ["https://A.com", "ftp://b.com", "HTTP://c.com"])).toStrictEqual({
      values: ["https://a.com", "http://c.com"],
      invalidReasons: ["Invalid url value"],
    });
    expect(normalizeArray("phoneNumber", ["4155552671", "123", "+44 20 7946 0958"])).toStrictEqual({
      values: ["+1 415 555 2671", "+44 20 7946 0958"],
      invalidReasons: ["Invalid phoneNumber value"],
    });
  });

  it("drops null, undefined and empty elements silently", () => {
    expect(normalizeArray("float", [null, "1.5", undefined, "", "  ", "bad"])).toStrictEqual({
      values: [1.5],
      invalidReasons: ["Invalid float value"],
    });
  });

  it("keeps empty strings for string arrays and serialises nested arrays and objects", () => {
    expect(normalizeArray("string", ["", "a", 1, [1, 2], { k: "v" }, null])).toStrictEqual({
      values: ["", "a", "1", "[1,2]", '{"k":"v"}'],
      invalidReasons: [],
    });
  });

  it("returns an empty result for an empty array", () => {
    expect(normalizeArray("email", [])).toStrictEqual({ values: [], invalidReasons: [] });
  });

  it("returns all reasons when every element is invalid", () => {
    expect(normalizeArray("date", ["hello 2", "2024-02-30"])).toStrictEqual({
      values: [],
      invalidReasons: ["Invalid date value", "Invalid date value"],
    });
  });
});
