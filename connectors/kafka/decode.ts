// Decoding Kafka messages into changes (pure): Debezium's JSON envelope with or without schemas
// (op c u d r t, before/after, source), rows unwrapped by ExtractNewRecordState, and plain JSON rows.
// A message that cannot be decoded comes back as an error with a reason; it never throws.
//
// One rule for Debezium's column values (with schemas): a value decodes into exactly what
// postgres-cdc gives for the same column, i.e. what `pg`'s type parser returns for the text Postgres
// itself sends for it. Each Debezium encoding is turned back into that Postgres text (a `date` of
// 17109 days becomes "2016-11-04", a Decimal "MDk=" at scale 2 becomes "123.45", a MicroTimestamp
// "2016-11-04 10:00:00.123456", an array its array literal) and parsed with the parser postgres-cdc
// uses for the column's type OID. Property normalisation then gives identical values from both.
//
// Encodings followed: Debezium 3.7.0.Alpha2 (github.com/debezium/debezium at aad5519), the PostgreSQL
// connector documentation (documentation/modules/ROOT/pages/connectors/postgresql.adoc, "Data type
// mappings", "Toasted values", the event examples), PostgresValueConverter.java,
// UnchangedToastedPlaceholder.java and ReselectColumnsPostProcessor.java (the placeholder forms).
import { createHash } from "node:crypto";
import pg from "pg";
import { civilFromDays } from "../../core/dates.js";
import { rowKey } from "../../core/change.js";
import type { BinaryHandlingMode } from "../postgres/debezium.js";
import "../postgres/types.js";

export type DebeziumFormat = "debezium" | "debezium-unwrapped" | "json";

/** Debezium's binary.handling.mode: how bytea values (and the placeholder in them) are written. */
export type { BinaryHandlingMode };

export interface DecodeOptions {
  /** The connector's unavailable.value.placeholder (Debezium's default when not given). */
  unavailableValuePlaceholder?: string;
  /** The connector's binary.handling.mode (bytes when not given). */
  binaryHandlingMode?: BinaryHandlingMode;
}

export interface DecodedChange {
  op: "insert" | "update" | "delete" | "snapshot" | "truncate" | "skip";
  key: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  /** Source commit time (source.ts_ms, __source_ts_ms or ts_ms), if the message says. */
  commitTime?: number;
  /** The delete is a Kafka tombstone (a message with a key and a null value). */
  tombstone?: true;
  /** The row may leave out columns it did not change (the `json` format): they keep their values. */
  partial?: true;
}

export type DecodeResult = { ok: true; change: DecodedChange } | { ok: false; reason: string };

/** Debezium's default unavailable.value.placeholder (unchanged TOAST values it could not read). */
export const UNAVAILABLE_VALUE = "__debezium_unavailable_value";

interface FieldSchema {
  field?: string;
  type?: string;
  name?: string;
  optional?: boolean;
  parameters?: Record<string, string>;
  fields?: FieldSchema[];
  items?: FieldSchema;
}

const OPS: Record<string, DecodedChange["op"]> = { c: "insert", u: "update", d: "delete", r: "snapshot", t: "truncate", m: "skip" };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const fail = (reason: string): DecodeResult => ({ ok: false, reason });

// ---------------------------------------------------------------------------------------------
// JSON with exact 64-bit integers. JSON.parse turns an int64 past 2^53 (a bigint column, a
// NanoTimestamp) into the nearest double. Messages are parsed with JSON.parse; only when a value the
// decoder reads as an integer (or a schemaless row value) turns out to be past 2^53 is the message
// parsed again by a small parser that keeps such integers as bigints. Fields the decoder never reads
// (source.ts_ns, ts_us) do not cost the slower parse.

/** Thrown when an integer past 2^53 was read from a lossy parse: the message is decoded again exactly. */
class NeedsExact extends Error {}
const NEEDS_EXACT = new NeedsExact("an integer past 2^53 needs an exact parse");

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) < 0x20) return true;
  return false;
}

/**
 * A number with a fraction or an exponent as its JSON text, from an exact parse: a Decimal the
 * JsonConverter writes as a number (`decimal.format=NUMERIC`) may hold more digits than a double.
 */
export class JsonDecimal {
  constructor(readonly text: string) {}
}

class LosslessJson {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly decimals = false,
  ) {}

  parse(): unknown {
    const value = this.value();
    this.space();
    if (this.i !== this.text.length) this.error();
    return value;
  }

  private error(): never {
    throw new SyntaxError(this.i >= this.text.length ? "Unexpected end of JSON input" : `Unexpected token ${this.text[this.i]} in JSON at position ${this.i}`);
  }

  private space(): void {
    while (this.i < this.text.length) {
      const c = this.text.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.i += 1;
    }
  }

  private value(): unknown {
    this.space();
    const c = this.text[this.i];
    if (c === "{") return this.object();
    if (c === "[") return this.array();
    if (c === '"') return this.string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
    if (this.text.startsWith("true", this.i)) {
      this.i += 4;
      return true;
    }
    if (this.text.startsWith("false", this.i)) {
      this.i += 5;
      return false;
    }
    if (this.text.startsWith("null", this.i)) {
      this.i += 4;
      return null;
    }
    return this.error();
  }

  private object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i += 1;
    this.space();
    if (this.text[this.i] === "}") {
      this.i += 1;
      return out;
    }
    for (;;) {
      this.space();
      if (this.text[this.i] !== '"') this.error();
      const key = this.string();
      this.space();
      if (this.text[this.i] !== ":") this.error();
      this.i += 1;
      const value = this.value();
      if (key === "__proto__") Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      else out[key] = value;
      this.space();
      const next = this.text[this.i];
      this.i += 1;
      if (next === "}") return out;
      if (next !== ",") {
        this.i -= 1;
        this.error();
      }
    }
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    this.i += 1;
    this.space();
    if (this.text[this.i] === "]") {
      this.i += 1;
      return out;
    }
    for (;;) {
      out.push(this.value());
      this.space();
      const next = this.text[this.i];
      this.i += 1;
      if (next === "]") return out;
      if (next !== ",") {
        this.i -= 1;
        this.error();
      }
    }
  }

  private string(): string {
    const start = this.i + 1;
    let end = this.text.indexOf('"', start);
    // A quote preceded by an odd number of backslashes is part of the string.
    for (;;) {
      if (end < 0) this.error();
      let slashes = 0;
      while (end - 1 - slashes >= start && this.text.charCodeAt(end - 1 - slashes) === 0x5c) slashes += 1;
      if (slashes % 2 === 0) break;
      end = this.text.indexOf('"', end + 1);
    }
    this.i = end + 1;
    const raw = this.text.slice(start, end);
    // Escapes and control characters (not allowed unescaped) are JSON.parse's to read or refuse.
    return raw.includes("\\") || hasControlCharacter(raw) ? (JSON.parse(`"${raw}"`) as string) : raw;
  }

  private number(): number | bigint | JsonDecimal {
    const start = this.i;
    let integerOnly = true;
    if (this.text[this.i] === "-") this.i += 1;
    const digits = this.i;
    while (this.i < this.text.length) {
      const c = this.text.charCodeAt(this.i);
      if (c >= 0x30 && c <= 0x39) this.i += 1;
      else if (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d) {
        integerOnly = false;
        this.i += 1;
      } else break;
    }
    const token = this.text.slice(start, this.i);
    if (this.i === digits || !/^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(token)) this.error();
    if (!integerOnly && this.decimals) return new JsonDecimal(token);
    const n = Number(token);
    return integerOnly && !Number.isSafeInteger(n) ? BigInt(token) : n;
  }
}

/**
 * JSON.parse, except that integers outside the safe range come back as bigints (and, with `decimals`,
 * every number with a fraction or an exponent as a JsonDecimal holding its text).
 */
export function parseJsonExact(text: string, decimals = false): unknown {
  return new LosslessJson(text, decimals).parse();
}

function parseJson(bytes: Buffer | null, what: string, exact: boolean): { value?: unknown; error?: string } {
  if (bytes === null) return { value: null };
  try {
    const text = bytes.toString("utf8");
    return { value: exact ? parseJsonExact(text, true) : (JSON.parse(text) as unknown) };
  } catch (error) {
    return { error: `${what} is not valid JSON: ${(error as Error).message}` };
  }
}

// ---------------------------------------------------------------------------------------------
// The unavailable-value placeholder in every form Debezium writes it (UnchangedToastedPlaceholder,
// ReselectColumnsPostProcessor): the text itself (text, json, xml, ... columns and their arrays), its
// UTF-8 bytes (a bytea column: base64 in JSON, or the binary.handling.mode's encoding), the bytes as a
// list of signed integers (int4[], date[], int8[] columns), a name-based UUID of the bytes (uuid[]),
// and a one-entry map or its JSON (hstore).

interface Placeholder {
  text: string;
  /** Encoded forms a string field may hold: the bytes in base64 (bytes fields) and per binary mode. */
  bytesBase64: string;
  binaryText: string | undefined;
  /** binaryText is hex (compared without case). */
  hex: boolean;
  ints: number[];
  uuid: string;
  json: string;
}

const placeholders = new Map<string, Placeholder>();

function placeholderOf(options: DecodeOptions | undefined): Placeholder {
  const text = options?.unavailableValuePlaceholder ?? UNAVAILABLE_VALUE;
  const mode = options?.binaryHandlingMode ?? "bytes";
  const cacheKey = `${mode}\u0000${text}`;
  const cached = placeholders.get(cacheKey);
  if (cached) return cached;
  const bytes = Buffer.from(text, "utf8");
  const md5 = createHash("md5").update(bytes).digest();
  // java.util.UUID.nameUUIDFromBytes: MD5, version 3, IETF variant.
  md5[6] = ((md5[6] ?? 0) & 0x0f) | 0x30;
  md5[8] = ((md5[8] ?? 0) & 0x3f) | 0x80;
  const hex = md5.toString("hex");
  const placeholder: Placeholder = {
    text,
    bytesBase64: bytes.toString("base64"),
    binaryText:
      mode === "base64" ? bytes.toString("base64") : mode === "base64-url-safe" ? bytes.toString("base64").replace(/\+/g, "-").replace(/\//g, "_") : mode === "hex" ? bytes.toString("hex") : undefined,
    hex: mode === "hex",
    ints: [...bytes].map((b) => (b > 127 ? b - 256 : b)),
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    json: JSON.stringify({ [text]: text }),
  };
  placeholders.set(cacheKey, placeholder);
  return placeholder;
}

function isPlaceholder(value: unknown, schema: FieldSchema | undefined, p: Placeholder): boolean {
  if (typeof value === "string") {
    if (value === p.text) return true;
    if ((schema === undefined || schema.type === "bytes") && value === p.bytesBase64) return true;
    if (p.binaryText !== undefined && value.length === p.binaryText.length && (schema === undefined || schema.type === "string") && (value === p.binaryText || (p.hex && value.toLowerCase() === p.binaryText))) {
      return true;
    }
    if (schema?.name === "io.debezium.data.Json" && value === p.json) return true;
    if (schema?.name === "io.debezium.data.Uuid" && value === p.uuid) return true;
    return false;
  }
  if (Array.isArray(value)) {
    const items: unknown[] = value;
    if (items.length === p.ints.length && items.length > 0 && items.every((v, i) => (typeof v === "number" || typeof v === "bigint") && Number(v) === p.ints[i])) {
      const itemType = schema?.items?.type;
      if (schema === undefined || itemType === "int32" || itemType === "int64") return true;
    }
    return items.some((item) => isPlaceholder(item, schema?.items, p));
  }
  if (isObject(value) && (schema === undefined || schema.type === "map")) {
    const keys = Object.keys(value);
    return keys.length === 1 && keys[0] === p.text && value[p.text] === p.text;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Postgres text forms (DateStyle ISO, the forms pgoutput and a SELECT send), and pg's parsers.

/** pg's parser for a type OID (the identity for types it has none for, like numeric, text, time). */
const parse = (oid: number, text: string): unknown => pg.types.getTypeParser(oid, "text")(text) as unknown;

const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  point: 600,
  float4: 700,
  float8: 701,
  circle: 718,
  money: 790,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  numeric: 1700,
  uuid: 2950,
} as const;

/** Array type OIDs by element type OID (element types without one give an array literal as text). */
const ARRAY_OIDS: Readonly<Record<number, number>> = {
  [OID.bool]: 1000,
  [OID.bytea]: 1001,
  [OID.int2]: 1005,
  [OID.int4]: 1007,
  [OID.text]: 1009,
  [OID.int8]: 1016,
  [OID.point]: 1017,
  [OID.float4]: 1021,
  [OID.float8]: 1022,
  [OID.oid]: 1028,
  [OID.money]: 791,
  [OID.json]: 199,
  [OID.date]: 1182,
  [OID.time]: 1183,
  [OID.timestamp]: 1115,
  [OID.timestamptz]: 1185,
  [OID.interval]: 1187,
  [OID.numeric]: 1231,
  [OID.timetz]: 1270,
  [OID.uuid]: 2951,
};

/**
 * Array type OIDs by the element's source type name (`__debezium.source.column.type` of an array column
 * is Postgres' typname upper-cased, e.g. `_INT4`). Builtin element types missing here (bit, varbit, xml,
 * macaddr8, ranges, ...) have no array parser in pg: postgres-cdc gives such arrays as their text.
 */
const ARRAY_OIDS_BY_SOURCE: Readonly<Record<string, number>> = {
  BOOL: 1000,
  BYTEA: 1001,
  INT2: 1005,
  INT4: 1007,
  TEXT: 1009,
  BPCHAR: 1014,
  VARCHAR: 1015,
  INT8: 1016,
  POINT: 1017,
  FLOAT4: 1021,
  FLOAT8: 1022,
  OID: 1028,
  MONEY: 791,
  JSON: 199,
  JSONB: 3807,
  INET: 1041,
  CIDR: 651,
  MACADDR: 1040,
  DATE: 1182,
  TIME: 1183,
  TIMESTAMP: 1115,
  TIMESTAMPTZ: 1185,
  INTERVAL: 1187,
  NUMERIC: 1231,
  TIMETZ: 1270,
  UUID: 2951,
};

const pad = (n: number | bigint, width = 2): string => String(n).padStart(width, "0");

/** Postgres' date text: year 0 and before are written as "<1 - year> BC". */
function dateParts(days: number): { date: string; bc: boolean } {
  const [year, month, day] = civilFromDays(days);
  const bc = year <= 0;
  return { date: `${pad(bc ? 1 - year : year, 4)}-${pad(month)}-${pad(day)}`, bc };
}

/** Microseconds of a day → "HH:MM:SS[.ffffff]" (trailing zeros of the fraction dropped, as Postgres). */
function clock(micros: bigint): string {
  const seconds = micros / 1_000_000n;
  const fraction = micros % 1_000_000n;
  const text = `${pad(seconds / 3600n)}:${pad((seconds / 60n) % 60n)}:${pad(seconds % 60n)}`;
  return fraction === 0n ? text : `${text}.${pad(fraction, 6).replace(/0+$/, "")}`;
}

/**
 * A time column's text: MySQL's TIME (-838:59:59 to 838:59:59, a duration as much as a time of day)
 * arrives as a negative MicroTime too, written as MySQL writes it, "-00:00:01" (clock() gave "00:00:-1").
 */
const timeText = (micros: bigint): string => (micros < 0n ? `-${clock(-micros)}` : clock(micros));

const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b));
const MICROS_PER_DAY = 86_400_000_000n;

function timestampText(micros: bigint): string {
  const days = floorDiv(micros, MICROS_PER_DAY);
  const { date, bc } = dateParts(Number(days));
  return `${date} ${clock(micros - days * MICROS_PER_DAY)}${bc ? " BC" : ""}`;
}

// Debezium's infinity sentinels (PostgresValueConverter: pgjdbc's PGStatement.DATE_POSITIVE_INFINITY
// read as microseconds, and the LocalDates -5877611-06-21 / -5877611-06-22 for dates).
const DATE_INFINITY = new Map([
  [-2147472692, "infinity"],
  [-2147472691, "-infinity"],
]);
const MICRO_INFINITY = new Map([
  [9223372036825200000n, "infinity"],
  [-9223372036832400000n, "-infinity"],
]);
const MILLI_INFINITY = new Map([
  [9223372036825200n, "infinity"],
  [-9223372036832400n, "-infinity"],
]);
const NANO_INFINITY = new Map([
  [9223372036854775807n, "infinity"],
  [-9223372036854775808n, "-infinity"],
]);

function integer(value: unknown, what: string, ctx: Context): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) {
    if (!Number.isSafeInteger(value) && !ctx.exact) throw NEEDS_EXACT;
    return BigInt(value);
  }
  throw new Error(what);
}

/** An ISO-8601 date-time (ZonedTimestamp, IsoTimestamp) → its parts. */
const ISO_DATE_TIME = /^([+-]?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/;
const ISO_TIME = /^(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/;

/** "Z" / "+05:30" / "+02:00" → Postgres' "+00" / "+05:30" / "+02". */
function offsetText(offset: string | undefined): string {
  if (offset === undefined || offset === "Z") return "+00";
  const m = /^([+-])(\d{2}):?(\d{2})?:?(\d{2})?$/.exec(offset);
  if (!m) return offset;
  const [, sign, hh, mm = "00", ss = "00"] = m;
  return `${sign}${hh}${mm !== "00" || ss !== "00" ? `:${mm}` : ""}${ss !== "00" ? `:${ss}` : ""}`;
}

const fractionText = (digits: string | undefined): string => {
  const trimmed = (digits ?? "").slice(0, 6).replace(/0+$/, "");
  return trimmed === "" ? "" : `.${trimmed}`;
};

function isoDateTimeText(value: string, zoned: boolean, what: string): string {
  if (zoned && (value === "infinity" || value === "-infinity")) return value;
  const m = ISO_DATE_TIME.exec(value);
  if (!m) throw new Error(what);
  const [, y = "0", mo, d, h, mi, s = "00", f, offset] = m;
  const year = Number(y);
  const bc = year <= 0;
  const time = `${h}:${mi}:${s}${fractionText(f)}`;
  return `${pad(bc ? 1 - year : year, 4)}-${mo}-${d} ${time}${zoned ? offsetText(offset) : ""}${bc ? " BC" : ""}`;
}

/** A decimal string (no exponent) with `scale` fraction digits from an unscaled integer. */
function scaled(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, "0");
  const whole = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return negative ? `-${whole}` : whole;
}

/** A big-endian two's-complement integer (base64) with `scale` digits after the point, as a decimal string. */
export function decodeDecimal(base64: unknown, scale: number): string {
  if (typeof base64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new Error(`decimal bytes must be base64, got ${JSON.stringify(base64)}`);
  const bytes = Buffer.from(base64, "base64");
  if (bytes.length === 0) throw new Error("decimal bytes are empty");
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  if ((bytes[0] ?? 0) & 0x80) n -= 1n << BigInt(bytes.length * 8);
  return scaled(n, scale);
}

/**
 * A Decimal the JsonConverter wrote as a JSON number (`decimal.format=NUMERIC`: BigDecimal's text, an
 * exponent when it is small, `1E-7`) as the decimal text with `scale` digits after the point.
 */
function numericDecimal(value: number | bigint | JsonDecimal, scale: number): string {
  const text = value instanceof JsonDecimal ? value.text : String(value);
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) throw new Error(`a decimal must be base64 bytes or a number, got ${text}`);
  const [, sign = "", whole = "", fraction = "", exponent = "0"] = m;
  // digits × 10^(exp - fraction length), as an unscaled integer at `scale`.
  const shift = Number(exponent) - fraction.length + scale;
  const digits = BigInt(whole + fraction);
  if (shift < 0 && digits % 10n ** BigInt(-shift) !== 0n) throw new Error(`the decimal ${text} has more digits after the point than its scale ${scale}`);
  const unscaled = shift >= 0 ? digits * 10n ** BigInt(shift) : digits / 10n ** BigInt(-shift);
  return scaled(sign === "-" ? -unscaled : unscaled, scale);
}

/** A double as plain decimal text (no exponent), the shortest digits that read back as it. */
function plainDecimal(n: number): string {
  const text = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!m) return text;
  const [, sign, lead = "", rest = "", exp = "0"] = m;
  const digits = lead + rest;
  const point = 1 + Number(exp);
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  return point >= digits.length ? `${sign}${digits}${"0".repeat(point - digits.length)}` : `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

const SPECIAL_DOUBLES: Readonly<Record<string, number>> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, "-Infinity": Number.NEGATIVE_INFINITY };
// decimal.handling.mode=string writes NaN and the infinities by SpecialValueDecimal's names.
const SPECIAL_DECIMALS: Readonly<Record<string, string>> = { NAN: "NaN", POSITIVE_INFINITY: "Infinity", NEGATIVE_INFINITY: "-Infinity", NaN: "NaN", Infinity: "Infinity", "-Infinity": "-Infinity" };

function double(value: unknown, what: string): number {
  if (typeof value === "number") return value;
  if (value instanceof JsonDecimal) return Number(value.text);
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && value in SPECIAL_DOUBLES) return SPECIAL_DOUBLES[value] as number;
  throw new Error(what);
}

/** A numeric column's text from a double (decimal.handling.mode=double), padded to the column's scale when known. */
function numericFromDouble(n: number, schema: FieldSchema): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity";
  const text = plainDecimal(n);
  const scale = Number(schema.parameters?.["__debezium.source.column.scale"] ?? 0);
  const length = schema.parameters?.["__debezium.source.column.length"];
  if (!(scale > 0) || length === "0" || length === "131089") return text;
  const [whole, fraction = ""] = text.split(".");
  return fraction.length >= scale ? text : `${whole}.${fraction.padEnd(scale, "0")}`;
}

/** money in lc_monetary C (and en_US): "$1,234.56", "-$0.50". */
function moneyText(decimal: string): string {
  if (decimal in SPECIAL_DECIMALS) return decimal;
  const negative = decimal.startsWith("-");
  const [whole = "0", fraction = ""] = (negative ? decimal.slice(1) : decimal).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}$${grouped}.${fraction.padEnd(2, "0").slice(0, 2)}`;
}

function bytesOf(value: unknown, encoding: "base64" | "hex", what: string): Buffer {
  if (typeof value !== "string") throw new Error(what);
  if (encoding === "hex") {
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(value)) throw new Error(what);
    return Buffer.from(value, "hex");
  }
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) throw new Error(what);
  return Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}

/** io.debezium.data.Bits: little-endian bytes, bit i of the value at the i-th character from the right. */
function bitsText(value: unknown, schema: FieldSchema): string {
  const bytes = bytesOf(value, "base64", "io.debezium.data.Bits must be base64 bytes");
  const declared = Number(schema.parameters?.length ?? bytes.length * 8);
  let highest = 0;
  for (let i = 0; i < bytes.length * 8; i++) if (((bytes[i >> 3] ?? 0) >> (i & 7)) & 1) highest = i + 1;
  // varbit without a length says 2^31 - 1: the value is as long as its highest set bit.
  const length = declared > bytes.length * 8 + 7 ? highest : declared;
  let text = "";
  for (let i = length - 1; i >= 0; i--) text += ((bytes[i >> 3] ?? 0) >> (i & 7)) & 1 ? "1" : "0";
  return text;
}

/** MicroDuration (approximate microseconds) → an interval text pg's parser reads. */
function intervalFromMicros(micros: bigint): string {
  const negative = micros < 0n;
  return `${negative ? "-" : ""}${clock(negative ? -micros : micros).replace(/^(\d+):/, (_, h: string) => `${Number(h)}:`)}`;
}

/** io.debezium.time.Interval ("P1Y2M3DT4H5M6.78S") → Postgres' "1 year 2 mons 3 days 04:05:06.78". */
function intervalFromIso(value: string): string {
  const m = /^P(-?\d+)Y(-?\d+)M(-?\d+)DT(-?\d+)H(-?\d+)M(-?\d+(?:\.\d+)?)S$/.exec(value);
  if (!m) throw new Error("io.debezium.time.Interval must be P<y>Y<m>M<d>DT<h>H<m>M<s>S");
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const parts: string[] = [];
  if (y) parts.push(`${y} year${Math.abs(y) === 1 ? "" : "s"}`);
  if (mo) parts.push(`${mo} mon${Math.abs(mo) === 1 ? "" : "s"}`);
  if (d) parts.push(`${d} day${Math.abs(d) === 1 ? "" : "s"}`);
  const micros = BigInt(h ?? 0) * 3_600_000_000n + BigInt(mi ?? 0) * 60_000_000n + BigInt(Math.round((s ?? 0) * 1_000_000));
  if (micros !== 0n || parts.length === 0) parts.push(intervalFromMicros(micros).replace(/^(-?)(\d):/, "$10$2:"));
  return parts.join(" ");
}

/** Postgres' array output (array_out): elements quoted when empty, NULL-like or holding a brace, comma, quote, backslash or white space. */
function arrayLiteral(elements: readonly (string | null)[]): string {
  const quoted = elements.map((e) => {
    if (e === null) return "NULL";
    if (e === "" || /^null$/i.test(e) || /[{}",\\ \t\n\r\v\f]/.test(e)) return `"${e.replace(/[\\"]/g, "\\$&")}"`;
    return e;
  });
  return `{${quoted.join(",")}}`;
}

// ---------------------------------------------------------------------------------------------
// Debezium value → (type OID, Postgres text), by the field's Connect schema.

interface Context {
  placeholder: Placeholder;
  binaryMode: BinaryHandlingMode;
  /** The message was parsed with exact integers (bigints past 2^53). */
  exact: boolean;
}

type Text = { oid: number; text: string } | { value: unknown };

function sourceType(schema: FieldSchema): string | undefined {
  return schema.parameters?.["__debezium.source.column.type"]?.toUpperCase();
}

function textOf(value: unknown, schema: FieldSchema, source: string | undefined, ctx: Context): Text {
  const name = schema.name;
  switch (name) {
    case "org.apache.kafka.connect.data.Decimal": {
      const scale = Number(schema.parameters?.scale ?? 0);
      // decimal.format=NUMERIC writes it as a JSON number: its digits are read from the JSON text.
      if (typeof value === "number" && !ctx.exact) throw NEEDS_EXACT;
      const decimal = typeof value === "number" || typeof value === "bigint" || value instanceof JsonDecimal ? numericDecimal(value, scale) : decodeDecimal(value, scale);
      return source === "MONEY" ? { oid: OID.money, text: moneyText(decimal) } : { oid: OID.numeric, text: decimal };
    }
    case "io.debezium.data.VariableScaleDecimal": {
      if (!isObject(value)) throw new Error("VariableScaleDecimal must be an object with scale and value");
      return { oid: OID.numeric, text: decodeDecimal(value.value, Number(value.scale)) };
    }
    case "io.debezium.time.Date":
    case "org.apache.kafka.connect.data.Date": {
      if (typeof value !== "number" || !Number.isInteger(value)) throw new Error(`${name} must be a number of days`);
      const infinity = DATE_INFINITY.get(value);
      if (infinity) return { oid: OID.date, text: infinity };
      const { date, bc } = dateParts(value);
      return { oid: OID.date, text: bc ? `${date} BC` : date };
    }
    case "io.debezium.time.IsoDate": {
      const m = typeof value === "string" ? /^([+-]?\d{4,})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:?\d{2})?$/.exec(value) : null;
      if (!m) throw new Error(`${name} must be an ISO-8601 date`);
      const year = Number(m[1]);
      return { oid: OID.date, text: `${pad(year <= 0 ? 1 - year : year, 4)}-${m[2]}-${m[3]}${year <= 0 ? " BC" : ""}` };
    }
    case "io.debezium.time.Timestamp":
    case "org.apache.kafka.connect.data.Timestamp": {
      const ms = integer(value, `${name} must be epoch milliseconds`, ctx);
      return { oid: OID.timestamp, text: MILLI_INFINITY.get(ms) ?? timestampText(ms * 1000n) };
    }
    case "io.debezium.time.MicroTimestamp": {
      const micros = integer(value, `${name} must be epoch microseconds`, ctx);
      return { oid: OID.timestamp, text: MICRO_INFINITY.get(micros) ?? timestampText(micros) };
    }
    case "io.debezium.time.NanoTimestamp": {
      const nanos = integer(value, `${name} must be epoch nanoseconds`, ctx);
      return { oid: OID.timestamp, text: NANO_INFINITY.get(nanos) ?? timestampText(floorDiv(nanos, 1000n)) };
    }
    case "io.debezium.time.IsoTimestamp":
      if (typeof value !== "string") throw new Error(`${name} must be an ISO-8601 string`);
      return { oid: OID.timestamp, text: isoDateTimeText(value, false, `${name} must be an ISO-8601 string`) };
    case "io.debezium.time.ZonedTimestamp":
      if (typeof value !== "string") throw new Error(`${name} must be an ISO-8601 string`);
      return { oid: OID.timestamptz, text: isoDateTimeText(value, true, `${name} must be an ISO-8601 string`) };
    case "io.debezium.time.Time":
    case "org.apache.kafka.connect.data.Time":
      return { oid: OID.time, text: timeText(integer(value, `${name} must be milliseconds since midnight`, ctx) * 1000n) };
    case "io.debezium.time.MicroTime":
      return { oid: OID.time, text: timeText(integer(value, `${name} must be microseconds since midnight`, ctx)) };
    case "io.debezium.time.NanoTime":
      return { oid: OID.time, text: timeText(integer(value, `${name} must be nanoseconds since midnight`, ctx) / 1000n) };
    case "io.debezium.time.IsoTime":
    case "io.debezium.time.ZonedTime": {
      const m = typeof value === "string" ? ISO_TIME.exec(value) : null;
      if (!m) throw new Error(`${name} must be an ISO-8601 time`);
      const [, h, mi, s = "00", f, offset] = m;
      const time = `${h}:${mi}:${s}${fractionText(f)}`;
      return name === "io.debezium.time.IsoTime" ? { oid: OID.time, text: time } : { oid: OID.timetz, text: `${time}${offsetText(offset)}` };
    }
    case "io.debezium.time.MicroDuration":
      return { oid: OID.interval, text: intervalFromMicros(integer(value, `${name} must be microseconds`, ctx)) };
    case "io.debezium.time.Interval":
      if (typeof value !== "string") throw new Error(`${name} must be an ISO-8601 duration`);
      return { oid: OID.interval, text: intervalFromIso(value) };
    case "io.debezium.data.Json":
      if (typeof value !== "string") throw new Error(`${name} must be a string`);
      return { oid: OID.json, text: value };
    case "io.debezium.data.Bits":
      return { oid: OID.bit, text: bitsText(value, schema) };
    case "io.debezium.data.geometry.Point": {
      const what = `${name} must be a struct with x and y`;
      if (!isObject(value)) throw new Error(what);
      return { oid: OID.point, text: `(${String(double(value.x, what))},${String(double(value.y, what))})` };
    }
    case "io.debezium.data.geometry.Circle": {
      const what = `${name} must be a struct with center and radius`;
      const center = isObject(value) ? value.center : undefined;
      if (!isObject(value) || !isObject(center)) throw new Error(what);
      return { oid: OID.circle, text: `<(${String(double(center.x, what))},${String(double(center.y, what))}),${String(double(value.radius, what))}>` };
    }
    default:
      break;
  }
  switch (schema.type) {
    case "boolean":
      if (typeof value !== "boolean") throw new Error(`${schema.field ?? "value"} must be a boolean`);
      // BIT(1) (and VARBIT(1)) columns arrive as booleans; Postgres writes them as 1 / 0.
      if (source === "BIT" || source === "VARBIT") return { oid: OID.bit, text: value ? "1" : "0" };
      return { oid: OID.bool, text: value ? "t" : "f" };
    case "int8":
    case "int16":
    case "int32":
      return { oid: OID.int4, text: integer(value, `${schema.field ?? "value"} must be an integer`, ctx).toString() };
    case "int64":
      return { oid: source === "OID" ? OID.oid : OID.int8, text: integer(value, `${schema.field ?? "value"} must be an integer`, ctx).toString() };
    case "float32":
    case "float64": {
      const n = double(value, `${schema.field ?? "value"} must be a number`);
      if (source === "NUMERIC" || source === "DECIMAL") return { oid: OID.numeric, text: numericFromDouble(n, schema) };
      if (source === "MONEY") return { oid: OID.money, text: moneyText(numericFromDouble(n, { parameters: { "__debezium.source.column.scale": "2" } })) };
      return { oid: schema.type === "float32" ? OID.float4 : OID.float8, text: String(n) };
    }
    case "string": {
      if (typeof value !== "string") throw new Error(`${schema.field ?? "value"} must be a string`);
      if (source === "BYTEA" && ctx.binaryMode !== "bytes") {
        const bytes = bytesOf(value, ctx.binaryMode === "hex" ? "hex" : "base64", `${schema.field ?? "value"} must be ${ctx.binaryMode} bytes`);
        return { oid: OID.bytea, text: `\\x${bytes.toString("hex")}` };
      }
      if (source === "NUMERIC" || source === "DECIMAL") return { oid: OID.numeric, text: SPECIAL_DECIMALS[value] ?? value };
      if (source === "MONEY") return { oid: OID.money, text: moneyText(SPECIAL_DECIMALS[value] ?? value) };
      return { oid: OID.text, text: value };
    }
    case "bytes":
      return { oid: OID.bytea, text: `\\x${bytesOf(value, "base64", `${schema.field ?? "value"} must be base64 bytes`).toString("hex")}` };
    case "struct":
      if (!schema.fields) return { value };
      if (!isObject(value)) throw new Error(`${schema.field ?? "value"} must be an object`);
      return { value: decodeRow(value, schema, ctx) };
    default:
      return { value: plainValue(value, ctx) };
  }
}

/** Values without a schema pass as they are; integers past 2^53 as their exact digits (Postgres' int8 text). */
function plainValue(value: unknown, ctx: Context): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof JsonDecimal) return Number(value.text);
  if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) && !ctx.exact) throw NEEDS_EXACT;
  if (Array.isArray(value)) return value.map((v) => plainValue(v, ctx));
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plainValue(v, ctx);
    return out;
  }
  return value;
}

/** Decodes one value by its Connect schema into what pg's parser gives for the column's Postgres text. */
function decodeValue(value: unknown, schema: FieldSchema | undefined, ctx: Context): unknown {
  if (value === null || value === undefined) return null;
  if (!schema) return plainValue(value, ctx);
  const source = sourceType(schema);
  if (schema.type === "array") {
    if (!Array.isArray(value)) throw new Error(`${schema.field ?? "value"} must be an array`);
    if (!schema.items) return plainValue(value, ctx);
    const elementSource = source?.startsWith("_") ? source.slice(1) : undefined;
    // The propagated length and scale of an array column describe its elements.
    const items: FieldSchema = elementSource === undefined ? schema.items : { ...schema.items, parameters: { ...schema.parameters, ...schema.items.parameters } };
    const texts: (string | null)[] = [];
    for (const item of value as unknown[]) {
      if (item === null || item === undefined) {
        texts.push(null);
        continue;
      }
      const text = textOf(item, items, elementSource, ctx);
      // Arrays of structs without a Postgres text here (geometries) are decoded element by element.
      if (!("text" in text)) return (value as unknown[]).map((v) => decodeValue(v, items, ctx));
      texts.push(text.text);
    }
    const oid = arrayOid(items, elementSource);
    return oid === undefined ? arrayLiteral(texts) : parse(oid, arrayLiteral(texts));
  }
  const text = textOf(value, schema, source, ctx);
  return "text" in text ? parse(text.oid, text.text) : text.value;
}

/** The array type OID of an array column from its item schema (undefined: pg has no parser for it). */
function arrayOid(items: FieldSchema, elementSource: string | undefined): number | undefined {
  // An array of a type the database defines (an enum; an extension's, such as ltree) is read element
  // by element by postgres-cdc (connectors/postgres/types.ts), each element its text.
  if (items.name === "io.debezium.data.Enum" || items.name === "io.debezium.data.Ltree") return ARRAY_OIDS[OID.text];
  if (elementSource !== undefined) return ARRAY_OIDS_BY_SOURCE[elementSource];
  switch (items.name) {
    case "io.debezium.time.Date":
    case "io.debezium.time.IsoDate":
    case "org.apache.kafka.connect.data.Date":
      return ARRAY_OIDS[OID.date];
    case "io.debezium.time.Timestamp":
    case "io.debezium.time.MicroTimestamp":
    case "io.debezium.time.NanoTimestamp":
    case "io.debezium.time.IsoTimestamp":
    case "org.apache.kafka.connect.data.Timestamp":
      return ARRAY_OIDS[OID.timestamp];
    case "io.debezium.time.ZonedTimestamp":
      return ARRAY_OIDS[OID.timestamptz];
    case "io.debezium.time.Time":
    case "io.debezium.time.MicroTime":
    case "io.debezium.time.NanoTime":
    case "io.debezium.time.IsoTime":
    case "org.apache.kafka.connect.data.Time":
      return ARRAY_OIDS[OID.time];
    case "io.debezium.time.ZonedTime":
      return ARRAY_OIDS[OID.timetz];
    case "io.debezium.time.MicroDuration":
    case "io.debezium.time.Interval":
      return ARRAY_OIDS[OID.interval];
    case "io.debezium.data.Uuid":
      return ARRAY_OIDS[OID.uuid];
    case "io.debezium.data.Json":
      return ARRAY_OIDS[OID.json];
    case "org.apache.kafka.connect.data.Decimal":
    case "io.debezium.data.VariableScaleDecimal":
      return ARRAY_OIDS[OID.numeric];
    case "io.debezium.data.geometry.Point":
      return ARRAY_OIDS[OID.point];
    case undefined:
      break;
    default:
      // Bits, Xml, Tsvector, Circle, ...: no array parser in pg, the text is the value.
      return undefined;
  }
  const byType: Readonly<Record<string, number>> = { boolean: OID.bool, int8: OID.int2, int16: OID.int2, int32: OID.int4, int64: OID.int8, float32: OID.float4, float64: OID.float8, string: OID.text, bytes: OID.bytea };
  const element = byType[items.type ?? ""];
  return element === undefined ? undefined : ARRAY_OIDS[element];
}

/** Decodes a row (struct) by its schema; unavailable values are undefined, so stored ones are kept. */
function decodeRow(row: Record<string, unknown>, schema: FieldSchema | undefined, ctx: Context): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = schema?.fields ? new Map(schema.fields.map((f) => [f.field, f])) : undefined;
  for (const column in row) {
    const value = row[column];
    const field = fields?.get(column);
    // Schemaless scalars (the common case without schemas) pass as they are.
    if (field === undefined && (typeof value === "boolean" || (typeof value === "number" && (ctx.exact || Number.isSafeInteger(value) || !Number.isInteger(value))))) {
      out[column] = value;
      continue;
    }
    if (isPlaceholder(value, field, ctx.placeholder)) {
      out[column] = undefined;
      continue;
    }
    try {
      out[column] = decodeValue(value, field, ctx);
    } catch (error) {
      if (error instanceof NeedsExact) throw error;
      throw new Error(`column ${column}: ${(error as Error).message}`);
    }
  }
  return out;
}

const contexts = new Map<string, Context>();
const contextsByOptions = new WeakMap<DecodeOptions, Context>();
const DEFAULT_CONTEXT: Context = { placeholder: placeholderOf(undefined), binaryMode: "bytes", exact: false };

function contextOf(options: DecodeOptions | undefined, exact = false): Context {
  if (!exact) {
    if (!options) return DEFAULT_CONTEXT;
    const known = contextsByOptions.get(options);
    if (known) return known;
  }
  const binaryMode = options?.binaryHandlingMode ?? "bytes";
  const cacheKey = `${binaryMode}\u0000${exact}\u0000${options?.unavailableValuePlaceholder ?? UNAVAILABLE_VALUE}`;
  let ctx = contexts.get(cacheKey);
  if (!ctx) {
    ctx = { placeholder: placeholderOf(options), binaryMode, exact };
    contexts.set(cacheKey, ctx);
  }
  if (!exact && options) contextsByOptions.set(options, ctx);
  return ctx;
}

/** Decodes one column value by its Connect schema (exported for tests): what postgres-cdc gives for it. */
export function decodeLogical(value: unknown, schema: FieldSchema | undefined, options?: DecodeOptions): unknown {
  return decodeValue(value, schema, contextOf(options, true));
}

/**
 * The record key from the message key: a JSON object (with or without schema) or a plain string.
 * With a schema, the key columns are decoded like row values and joined as postgres-cdc joins them.
 */
export function decodeKey(key: Buffer | null, options?: DecodeOptions): { key?: string; error?: string } {
  try {
    return keyOf(key, contextOf(options));
  } catch (error) {
    if (!(error instanceof NeedsExact)) throw error;
    return keyOf(key, contextOf(options, true));
  }
}

/**
 * The commonest key, one integer column without a schema (`{"id":42}`): the integer's text is the key
 * (canonical: no sign on zero, no leading zero, at most 15 digits, so exact as a double), found
 * without parsing the JSON. A column name with an escape or a control character is parsed.
 */
const ONE_INTEGER_KEY = /^\{"[^"\\\p{Cc}]+":(0|-?[1-9][0-9]{0,14})\}$/u;

function keyOf(key: Buffer | null, ctx: Context): { key?: string; error?: string } {
  if (key === null || key.length === 0) return { error: "the message has no key" };
  const text = key.toString("utf8");
  const integer = ONE_INTEGER_KEY.exec(text);
  if (integer) return { key: integer[1] as string };
  let parsed: unknown;
  try {
    parsed = ctx.exact ? parseJsonExact(text, true) : (JSON.parse(text) as unknown);
  } catch {
    return { key: text };
  }
  // A plain fractional key read by the exact parse is the number the plain parse gives (its tombstone,
  // read without it, must name the same row).
  if (parsed instanceof JsonDecimal) parsed = Number(parsed.text);
  let schema: FieldSchema | undefined;
  if (isObject(parsed) && "payload" in parsed && "schema" in parsed) {
    schema = isObject(parsed.schema) && Array.isArray(parsed.schema.fields) ? (parsed.schema as FieldSchema) : undefined;
    parsed = parsed.payload;
  }
  if (isObject(parsed)) {
    const columns = Object.keys(parsed);
    if (columns.length === 0) return { error: `the key ${text.slice(0, 200)} has no scalar key columns` };
    for (const column of columns) {
      const v = parsed[column];
      // A struct-typed key column (VariableScaleDecimal, ...) is an object in JSON; other objects are not keys.
      if (v === null || (typeof v === "object" && !(v instanceof JsonDecimal) && schema?.fields?.some((f) => f.field === column && f.type === "struct") !== true)) {
        return { error: `the key ${text.slice(0, 200)} has no scalar key columns` };
      }
    }
    if (!schema) {
      let joined = "";
      for (let i = 0; i < columns.length; i++) joined += (i === 0 ? "" : ",") + String(plainValue(parsed[columns[i] as string], ctx));
      return { key: joined };
    }
    try {
      const row = decodeRow(parsed, schema, ctx);
      return { key: rowKey(columns, row) };
    } catch (error) {
      if (error instanceof NeedsExact) throw error;
      return { error: `the key ${text.slice(0, 200)}: ${(error as Error).message}` };
    }
  }
  if (typeof parsed === "number" && !Number.isSafeInteger(parsed) && Number.isInteger(parsed) && !ctx.exact) throw NEEDS_EXACT;
  if (typeof parsed === "string" || typeof parsed === "number" || typeof parsed === "bigint") return { key: String(parsed) };
  return { error: `the key ${text.slice(0, 200)} is not an object, string or number` };
}

function envelopeSchema(schema: unknown, part: "before" | "after"): FieldSchema | undefined {
  if (!isObject(schema) || !Array.isArray(schema.fields)) return undefined;
  return (schema.fields as FieldSchema[]).find((f) => f.field === part);
}

export function decodeMessage(format: DebeziumFormat, key: Buffer | null, value: Buffer | null, options?: DecodeOptions): DecodeResult {
  try {
    return decodeWith(format, key, value, contextOf(options));
  } catch (error) {
    if (!(error instanceof NeedsExact)) throw error;
    return decodeWith(format, key, value, contextOf(options, true));
  }
}

function decodeWith(format: DebeziumFormat, key: Buffer | null, value: Buffer | null, ctx: Context): DecodeResult {
  const keyResult = keyOf(key, ctx);
  // A tombstone deletes the row by key (after a Debezium delete it is a harmless repeat).
  if (value === null) {
    return keyResult.key === undefined ? fail(`tombstone without a usable key: ${keyResult.error}`) : { ok: true, change: { op: "delete", key: keyResult.key, before: null, after: null, tombstone: true } };
  }
  const parsed = parseJson(value, "the value", ctx.exact);
  if (parsed.error) return fail(parsed.error);
  let body = parsed.value;
  let schema: unknown;
  if (isObject(body) && "payload" in body && "schema" in body) {
    schema = body.schema;
    body = body.payload;
  }
  if (!isObject(body)) return fail(`the value is ${body === null ? "null" : Array.isArray(body) ? "an array" : typeof body}, not an object`);
  try {
    if (format === "json") {
      if (keyResult.key === undefined) return fail(keyResult.error ?? "no key");
      return { ok: true, change: { op: "update", key: keyResult.key, before: null, after: decodeRow(body, undefined, ctx), partial: true } };
    }
    if (format === "debezium-unwrapped") {
      // ExtractNewRecordState passes a truncate on as it is, the envelope without a key, under
      // delete.tombstone.handling.mode=rewrite-with-tombstone (it drops it otherwise).
      if ((key === null || key.length === 0) && body.op === "t" && isObject(body.source)) {
        const commitTime = typeof body.source.ts_ms === "number" ? body.source.ts_ms : typeof body.ts_ms === "number" ? body.ts_ms : undefined;
        return { ok: true, change: { op: "truncate", key: "", before: null, after: null, ...(commitTime === undefined ? {} : { commitTime }) } };
      }
      if (keyResult.key === undefined) return fail(keyResult.error ?? "no key");
      const row: Record<string, unknown> = {};
      for (const [column, v] of Object.entries(decodeRow(body, isObject(schema) ? (schema as FieldSchema) : undefined, ctx))) if (!column.startsWith("__")) row[column] = v;
      const commitTime = typeof body.__source_ts_ms === "number" ? body.__source_ts_ms : undefined;
      const deleted = body.__deleted === true || body.__deleted === "true";
      const opCode = typeof body.__op === "string" ? body.__op : undefined;
      if (opCode !== undefined && !(opCode in OPS)) return fail(`unknown __op ${JSON.stringify(opCode)}`);
      const op = deleted ? "delete" : opCode ? (OPS[opCode] as DecodedChange["op"]) : "update";
      return { ok: true, change: { op, key: keyResult.key, before: null, after: op === "delete" ? null : row, ...(commitTime === undefined ? {} : { commitTime }) } };
    }
    const opCode = body.op;
    if (typeof opCode !== "string") return fail("the envelope has no op");
    const op = OPS[opCode];
    if (!op) return fail(`unknown op ${JSON.stringify(opCode)}`);
    const source = isObject(body.source) ? body.source : {};
    const commitTime = typeof source.ts_ms === "number" ? source.ts_ms : typeof body.ts_ms === "number" ? body.ts_ms : undefined;
    const timing = commitTime === undefined ? {} : { commitTime };
    if (op === "truncate" || op === "skip") return { ok: true, change: { op, key: keyResult.key ?? "", before: null, after: null, ...timing } };
    if (keyResult.key === undefined) return fail(keyResult.error ?? "no key");
    if (body.before !== undefined && body.before !== null && !isObject(body.before)) return fail("before is not an object");
    const before = isObject(body.before) ? decodeRow(body.before, envelopeSchema(schema, "before"), ctx) : null;
    const after = isObject(body.after) ? decodeRow(body.after, envelopeSchema(schema, "after"), ctx) : null;
    if ((op === "insert" || op === "update" || op === "snapshot") && !after) return fail(`op ${opCode} without after`);
    return { ok: true, change: { op, key: keyResult.key, before, after: op === "delete" ? null : after, ...timing } };
  } catch (error) {
    if (error instanceof NeedsExact) throw error;
    return fail((error as Error).message);
  }
}
