// Decoding Kafka messages into changes (pure): Debezium's JSON envelope with or without schemas
// (op c u d r t, before/after, source), Debezium's logical types (decoded from the schema), rows
// unwrapped by ExtractNewRecordState, and plain JSON rows. A message that cannot be decoded comes
// back as an error with a reason; it never throws.

export type DebeziumFormat = "debezium" | "debezium-unwrapped" | "json";

export interface DecodedChange {
  op: "insert" | "update" | "delete" | "snapshot" | "truncate" | "skip";
  key: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  /** Source commit time (source.ts_ms, __source_ts_ms or ts_ms), if the message says. */
  commitTime?: number;
}

export type DecodeResult = { ok: true; change: DecodedChange } | { ok: false; reason: string };

/** Debezium writes this for a column whose value it could not read (unchanged TOAST). */
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

function parseJson(bytes: Buffer | null, what: string): { value?: unknown; error?: string } {
  if (bytes === null) return { value: null };
  try {
    return { value: JSON.parse(bytes.toString("utf8")) as unknown };
  } catch (error) {
    return { error: `${what} is not valid JSON: ${(error as Error).message}` };
  }
}

/** A big-endian two's-complement integer (base64) with `scale` digits after the point, as a decimal string. */
export function decodeDecimal(base64: unknown, scale: number): string {
  if (typeof base64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new Error(`decimal bytes must be base64, got ${JSON.stringify(base64)}`);
  const bytes = Buffer.from(base64, "base64");
  if (bytes.length === 0) throw new Error("decimal bytes are empty");
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  if ((bytes[0] ?? 0) & 0x80) n -= 1n << BigInt(bytes.length * 8);
  const negative = n < 0n;
  const digits = (negative ? -n : n).toString().padStart(scale + 1, "0");
  const whole = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return negative ? `-${whole}` : whole;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");
function timeOfDay(ms: number, fraction: string): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  return `${pad(h)}:${pad(m)}:${pad(s)}${fraction}`;
}

/** Decodes one value by its Connect schema (logical types); values without a schema pass through. */
export function decodeLogical(value: unknown, schema: FieldSchema | undefined): unknown {
  if (value === null || value === undefined || !schema) return value;
  if (value === UNAVAILABLE_VALUE) return undefined;
  switch (schema.name) {
    case "org.apache.kafka.connect.data.Decimal":
      return decodeDecimal(value, Number(schema.parameters?.scale ?? 0));
    case "io.debezium.data.VariableScaleDecimal": {
      if (!isObject(value)) throw new Error("VariableScaleDecimal must be an object with scale and value");
      return decodeDecimal(value.value, Number(value.scale));
    }
    case "io.debezium.time.Date":
    case "org.apache.kafka.connect.data.Date":
      if (typeof value !== "number") throw new Error(`${schema.name} must be a number of days`);
      return value * 86_400_000;
    case "io.debezium.time.Timestamp":
    case "org.apache.kafka.connect.data.Timestamp":
      if (typeof value !== "number") throw new Error(`${schema.name} must be epoch milliseconds`);
      return value;
    case "io.debezium.time.MicroTimestamp":
      if (typeof value !== "number") throw new Error(`${schema.name} must be epoch microseconds`);
      return Math.floor(value / 1000);
    case "io.debezium.time.NanoTimestamp":
      if (typeof value !== "number") throw new Error(`${schema.name} must be epoch nanoseconds`);
      return Math.floor(value / 1_000_000);
    case "io.debezium.time.ZonedTimestamp":
    case "io.debezium.time.ZonedTime":
      if (typeof value !== "string") throw new Error(`${schema.name} must be an ISO-8601 string`);
      return value;
    case "io.debezium.time.Time":
    case "org.apache.kafka.connect.data.Time":
      if (typeof value !== "number") throw new Error(`${schema.name} must be milliseconds since midnight`);
      return timeOfDay(value, `.${pad(value % 1000, 3)}`);
    case "io.debezium.time.MicroTime":
      if (typeof value !== "number") throw new Error(`${schema.name} must be microseconds since midnight`);
      return timeOfDay(Math.floor(value / 1000), `.${pad(value % 1_000_000, 6)}`);
    case "io.debezium.time.NanoTime":
      if (typeof value !== "number") throw new Error(`${schema.name} must be nanoseconds since midnight`);
      return timeOfDay(Math.floor(value / 1_000_000), `.${pad(value % 1_000_000_000, 9)}`);
    case "io.debezium.data.Json":
      if (typeof value !== "string") throw new Error("io.debezium.data.Json must be a string");
      return value;
    default:
      break;
  }
  if (schema.type === "array") {
    if (!Array.isArray(value)) throw new Error(`${schema.field ?? "value"} must be an array`);
    return value.map((item) => decodeLogical(item, schema.items));
  }
  if (schema.type === "struct" && schema.fields) {
    if (!isObject(value)) throw new Error(`${schema.field ?? "value"} must be an object`);
    return decodeRow(value, schema);
  }
  return value;
}

/** Decodes a row (struct) by its schema; unavailable values are left out so stored ones are kept. */
function decodeRow(row: Record<string, unknown>, schema: FieldSchema | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = new Map((schema?.fields ?? []).map((f) => [f.field, f]));
  for (const [column, value] of Object.entries(row)) {
    if (value === UNAVAILABLE_VALUE) continue;
    try {
      const decoded = decodeLogical(value, fields.get(column));
      if (decoded !== undefined) out[column] = decoded;
    } catch (error) {
      throw new Error(`column ${column}: ${(error as Error).message}`);
    }
  }
  return out;
}

/** The record key from the message key: a JSON object (with or without schema) or a plain string. */
export function decodeKey(key: Buffer | null): { key?: string; error?: string } {
  if (key === null || key.length === 0) return { error: "the message has no key" };
  const text = key.toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { key: text };
  }
  if (isObject(parsed) && "payload" in parsed && "schema" in parsed) parsed = parsed.payload;
  if (isObject(parsed)) {
    const values = Object.values(parsed);
    if (values.length === 0 || values.some((v) => v === null || typeof v === "object")) return { error: `the key ${text.slice(0, 200)} has no scalar key columns` };
    return { key: values.map(String).join(",") };
  }
  if (typeof parsed === "string" || typeof parsed === "number") return { key: String(parsed) };
  return { error: `the key ${text.slice(0, 200)} is not an object, string or number` };
}

function envelopeSchema(schema: unknown, part: "before" | "after"): FieldSchema | undefined {
  if (!isObject(schema) || !Array.isArray(schema.fields)) return undefined;
  return (schema.fields as FieldSchema[]).find((f) => f.field === part);
}

export function decodeMessage(format: DebeziumFormat, key: Buffer | null, value: Buffer | null): DecodeResult {
  const keyResult = decodeKey(key);
  // A tombstone deletes the row by key (after a Debezium delete it is a harmless repeat).
  if (value === null) return keyResult.key === undefined ? fail(`tombstone without a usable key: ${keyResult.error}`) : { ok: true, change: { op: "delete", key: keyResult.key, before: null, after: null } };
  const parsed = parseJson(value, "the value");
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
      return { ok: true, change: { op: "update", key: keyResult.key, before: null, after: decodeRow(body, undefined) } };
    }
    if (format === "debezium-unwrapped") {
      if (keyResult.key === undefined) return fail(keyResult.error ?? "no key");
      const row: Record<string, unknown> = {};
      for (const [column, v] of Object.entries(decodeRow(body, isObject(schema) ? (schema as FieldSchema) : undefined))) if (!column.startsWith("__")) row[column] = v;
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
    const before = isObject(body.before) ? decodeRow(body.before, envelopeSchema(schema, "before")) : null;
    const after = isObject(body.after) ? decodeRow(body.after, envelopeSchema(schema, "after")) : null;
    if ((op === "insert" || op === "update" || op === "snapshot") && !after) return fail(`op ${opCode} without after`);
    if (body.before !== undefined && body.before !== null && !isObject(body.before)) return fail("before is not an object");
    return { ok: true, change: { op, key: keyResult.key, before, after: op === "delete" ? null : after, ...timing } };
  } catch (error) {
    return fail((error as Error).message);
  }
}
