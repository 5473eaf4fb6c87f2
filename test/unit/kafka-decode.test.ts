// Decoding Kafka messages: Debezium's documented examples for every op, envelopes with and without
// schemas, every Debezium encoding decoded into what postgres-cdc gives for the same column (pg's
// parsers over Postgres' text), the unavailable-value placeholder in every form, exact 64-bit
// integers, unwrapped rows, plain JSON rows, and the exact reason for every malformed message.
import { describe, expect, it } from "vitest";
import { decodeDecimal, decodeKey, decodeLogical, decodeMessage, parseJsonExact, type DecodeOptions } from "../../connectors/kafka/decode.js";
import { ANNE_DECODED, ANNE_ENCODED, envelope, key } from "../fixtures/debezium.js";
import { DOC_CREATE, DOC_DELETE, DOC_TRUNCATE, DOC_UPDATE, docKey, docMessage, docSnapshotRead, docUpdateFull } from "../fixtures/debezium-docs.js";
import { MALFORMED } from "../fixtures/malformed.js";

const plain = { id: 1, first_name: "Anne", last_name: "Kretchmar", email: "annek@noanswer.org" };
type Schema = Parameters<typeof decodeLogical>[1];
const s = (type: string, name?: string, parameters?: Record<string, string>, items?: Schema): Schema => ({ type, ...(name ? { name } : {}), ...(parameters ? { parameters } : {}), ...(items ? { items } : {}) });
const src = (type: string, extra: Record<string, string> = {}) => ({ "__debezium.source.column.type": type, ...extra });

describe("Debezium's documented examples", () => {
  it("create, update without and with REPLICA IDENTITY FULL, delete, tombstone and truncate", () => {
    expect(decodeMessage("debezium", docKey(), docMessage(DOC_CREATE))).toEqual({ ok: true, change: { op: "insert", key: "1", before: null, after: plain, commitTime: 1559033904863 } });
    const updated = { ...plain, first_name: "Anne Marie" };
    // REPLICA IDENTITY DEFAULT: `before` holds only the key.
    expect(decodeMessage("debezium", docKey(), docMessage(DOC_UPDATE))).toEqual({ ok: true, change: { op: "update", key: "1", before: { id: 1 }, after: updated, commitTime: 1559033904863 } });
    // REPLICA IDENTITY FULL: `before` holds every column.
    expect(decodeMessage("debezium", docKey(), docUpdateFull())).toEqual({ ok: true, change: { op: "update", key: "1", before: plain, after: updated, commitTime: 1559033904863 } });
    expect(decodeMessage("debezium", docKey(), docMessage(DOC_DELETE))).toEqual({ ok: true, change: { op: "delete", key: "1", before: { id: 1 }, after: null, commitTime: 1559033904863 } });
    expect(decodeMessage("debezium", docKey(), null)).toEqual({ ok: true, change: { op: "delete", key: "1", before: null, after: null, tombstone: true } });
    // A truncate has no key.
    expect(decodeMessage("debezium", null, docMessage(DOC_TRUNCATE))).toEqual({ ok: true, change: { op: "truncate", key: "", before: null, after: null, commitTime: 1559033904863 } });
  });

  it.each(["first", "first_in_data_collection", "true", "last_in_data_collection", "last", "incremental"])("a snapshot read marked %s is a snapshot change of its row", (marker) => {
    const row = { id: 2, first_name: "Edward", last_name: "Walker", email: "ed@walker.com" };
    expect(decodeMessage("debezium", key(2, true), docSnapshotRead(marker, row))).toEqual({ ok: true, change: { op: "snapshot", key: "2", before: null, after: row, commitTime: 1559033904863 } });
  });
});

describe("decodeMessage (debezium)", () => {
  for (const withSchema of [true, false]) {
    const label = withSchema ? "with schemas" : "without schemas";
    it(`decodes create, update, delete, tombstone, snapshot read and truncate ${label}`, () => {
      expect(decodeMessage("debezium", key(1, withSchema), envelope("c", null, plain, 1559033904863, withSchema))).toEqual({
        ok: true,
        change: { op: "insert", key: "1", before: null, after: plain, commitTime: 1559033904863 },
      });
      const updated = { ...plain, first_name: "Anne Marie" };
      expect(decodeMessage("debezium", key(1, withSchema), envelope("u", plain, updated, 1559033904900, withSchema))).toEqual({
        ok: true,
        change: { op: "update", key: "1", before: plain, after: updated, commitTime: 1559033904900 },
      });
      expect(decodeMessage("debezium", key(1, withSchema), envelope("d", { id: 1 }, null, 1559033905000, withSchema))).toEqual({
        ok: true,
        change: { op: "delete", key: "1", before: { id: 1 }, after: null, commitTime: 1559033905000 },
      });
      expect(decodeMessage("debezium", key(1, withSchema), null)).toEqual({ ok: true, change: { op: "delete", key: "1", before: null, after: null, tombstone: true } });
      expect(decodeMessage("debezium", key(1, withSchema), envelope("r", null, plain, 1559033800000, withSchema, "true"))).toEqual({
        ok: true,
        change: { op: "snapshot", key: "1", before: null, after: plain, commitTime: 1559033800000 },
      });
      expect(decodeMessage("debezium", null, envelope("t", null, null, 1559033906000, withSchema))).toEqual({
        ok: true,
        change: { op: "truncate", key: "", before: null, after: null, commitTime: 1559033906000 },
      });
    });
  }

  it("decodes every logical type from the schema into what postgres-cdc gives", () => {
    expect(decodeMessage("debezium", key(1, true), envelope("c", null, ANNE_ENCODED, 1, true))).toEqual({
      ok: true,
      change: { op: "insert", key: "1", before: null, after: ANNE_DECODED, commitTime: 1 },
    });
  });

  it("passes values through as they are without schemas (integers past 2^53 as their exact digits)", () => {
    const result = decodeMessage("debezium", key(1, false), envelope("c", null, ANNE_ENCODED, 1, false));
    expect(result).toEqual({ ok: true, change: { op: "insert", key: "1", before: null, after: { ...ANNE_ENCODED, seen_ns: "1709212455123456000" }, commitTime: 1 } });
  });

  it("decodes two's-complement decimals of any size exactly", () => {
    expect(decodeDecimal("MDk=", 2)).toBe("123.45");
    expect(decodeDecimal("/z0=", 3)).toBe("-0.195");
    expect(decodeDecimal("AQ==", 0)).toBe("1");
    expect(decodeDecimal("AQ==", 4)).toBe("0.0001");
    expect(decodeDecimal("/w==", 2)).toBe("-0.01");
    expect(decodeDecimal(Buffer.from("0de0b6b3a7640000", "hex").toString("base64"), 18)).toBe("1.000000000000000000");
    expect(decodeDecimal(Buffer.from("ff0000000000000000000000", "hex").toString("base64"), 6)).toBe("-309485009821345068724.781056");
  });
});

describe("one rule: a Debezium value decodes into what postgres-cdc gives for the column", () => {
  // [what, Connect schema, Debezium's value, options, what pg's parser gives for Postgres' text]
  const cases: [string, Schema, unknown, DecodeOptions | undefined, unknown][] = [
    ["boolean", s("boolean"), true, undefined, true],
    ["BIT(1) with its source type", s("boolean", undefined, src("BIT", { "__debezium.source.column.length": "1" })), true, undefined, "1"],
    ["BIT(4) (Bits, little-endian)", s("bytes", "io.debezium.data.Bits", { length: "4" }), Buffer.from([0b1010]).toString("base64"), undefined, "1010"],
    ["BIT(12) over two bytes", s("bytes", "io.debezium.data.Bits", { length: "12" }), Buffer.from([0x01, 0x08]).toString("base64"), undefined, "100000000001"],
    ["VARBIT without a length", s("bytes", "io.debezium.data.Bits", { length: "2147483647" }), Buffer.from([0b101]).toString("base64"), undefined, "101"],
    ["smallint", s("int16"), -32768, undefined, -32768],
    ["integer", s("int32"), 2147483647, undefined, 2147483647],
    ["bigint past 2^53 (Postgres' int8 text)", s("int64"), 9223372036854775807n, undefined, "9223372036854775807"],
    ["bigint", s("int64"), 42, undefined, "42"],
    ["oid with its source type", s("int64", undefined, src("OID")), 42, undefined, 42],
    ["real", s("float32"), 3.1415927, undefined, 3.1415927],
    ["double NaN (Jackson writes a string)", s("float64"), "NaN", undefined, Number.NaN],
    ["double -Infinity", s("float64"), "-Infinity", undefined, Number.NEGATIVE_INFINITY],
    ["numeric(20,6) precise", s("bytes", "org.apache.kafka.connect.data.Decimal", { scale: "6" }), "AKtUqYzrGELA", undefined, "12345678901234.123456"],
    ["numeric precise, negative high scale", s("bytes", "org.apache.kafka.connect.data.Decimal", { scale: "6" }), "/w==", undefined, "-0.000001"],
    ["numeric (VariableScaleDecimal)", s("struct", "io.debezium.data.VariableScaleDecimal"), { scale: 3, value: "/z0=" }, undefined, "-0.195"],
    ["numeric string mode", s("string"), "12345678901234.123456", undefined, "12345678901234.123456"],
    ["numeric string mode NAN with its source type", s("string", undefined, src("NUMERIC")), "NAN", undefined, "NaN"],
    ["numeric string mode POSITIVE_INFINITY with its source type", s("string", undefined, src("NUMERIC")), "POSITIVE_INFINITY", undefined, "Infinity"],
    ["numeric double mode with its source type and scale", s("float64", undefined, src("NUMERIC", { "__debezium.source.column.length": "10", "__debezium.source.column.scale": "2" })), 1.5, undefined, "1.50"],
    ["numeric double mode, large", s("float64", undefined, src("NUMERIC")), 1e21, undefined, "1000000000000000000000"],
    ["numeric double mode, small", s("float64", undefined, src("NUMERIC")), 1.5e-7, undefined, "0.00000015"],
    ["numeric double mode NaN", s("float64", undefined, src("NUMERIC")), "NaN", undefined, "NaN"],
    ["money precise with its source type", s("bytes", "org.apache.kafka.connect.data.Decimal", { scale: "2", ...src("MONEY") }), Buffer.from([0x01, 0xe2, 0x40]).toString("base64"), undefined, "$1,234.56"],
    ["money string mode, negative", s("string", undefined, src("MONEY")), "-0.50", undefined, "-$0.50"],
    ["money double mode", s("float64", undefined, src("MONEY")), 4155552671, undefined, "$4,155,552,671.00"],
    ["text", s("string"), "text ✓ 🎉", undefined, "text ✓ 🎉"],
    ["uuid", s("string", "io.debezium.data.Uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", undefined, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
    ["json (parsed, as pg parses it)", s("string", "io.debezium.data.Json"), '{"a": [1, 2]}', undefined, { a: [1, 2] }],
    ["json scalar", s("string", "io.debezium.data.Json"), "42", undefined, 42],
    ["enum", s("string", "io.debezium.data.Enum", { allowed: "sad,ok,happy" }), "ok", undefined, "ok"],
    ["date (days)", s("int32", "io.debezium.time.Date"), 17109, undefined, new Date(2016, 10, 4)],
    ["date before 1970", s("int32", "io.debezium.time.Date"), -1, undefined, new Date(1969, 11, 31)],
    ["date BC (0044-03-15 BC)", s("int32", "io.debezium.time.Date"), -735160, undefined, (() => { const d = new Date(2000, 0, 1); d.setFullYear(-43, 2, 15); return d; })()],
    ["date infinity", s("int32", "io.debezium.time.Date"), -2147472692, undefined, Number.POSITIVE_INFINITY],
    ["date -infinity (connect)", s("int32", "org.apache.kafka.connect.data.Date"), -2147472691, undefined, Number.NEGATIVE_INFINITY],
    ["timestamp(3) (ms)", s("int64", "io.debezium.time.Timestamp"), 1709212455123, undefined, new Date(2024, 1, 29, 13, 14, 15, 123)],
    ["timestamp (µs) before 1970", s("int64", "io.debezium.time.MicroTimestamp"), -1, undefined, new Date(1969, 11, 31, 23, 59, 59, 999)],
    ["timestamp (µs) from the documentation", s("int64", "io.debezium.time.MicroTimestamp"), 1529507596945104, undefined, new Date(2018, 5, 20, 15, 13, 16, 945)],
    ["timestamp infinity (µs)", s("int64", "io.debezium.time.MicroTimestamp"), 9223372036825200000n, undefined, Number.POSITIVE_INFINITY],
    ["timestamp -infinity (ms)", s("int64", "io.debezium.time.Timestamp"), -9223372036832400n, undefined, Number.NEGATIVE_INFINITY],
    ["timestamp (connect, ms)", s("int64", "org.apache.kafka.connect.data.Timestamp"), 0, undefined, new Date(1970, 0, 1)],
    ["timestamp (ns)", s("int64", "io.debezium.time.NanoTimestamp"), 1709212455123456789n, undefined, new Date(2024, 1, 29, 13, 14, 15, 123)],
    ["timestamptz", s("string", "io.debezium.time.ZonedTimestamp"), "2024-02-29T11:14:15.123456Z", undefined, new Date(Date.UTC(2024, 1, 29, 11, 14, 15, 123))],
    ["timestamptz far future", s("string", "io.debezium.time.ZonedTimestamp"), "+200000-01-01T00:00:00Z", undefined, new Date(Date.UTC(200000, 0, 1))],
    ["timestamptz past a JS Date's range (pg gives an invalid Date)", s("string", "io.debezium.time.ZonedTimestamp"), "+294276-12-31T23:59:59.999999Z", undefined, new Date(Number.NaN)],
    ["timestamptz BC", s("string", "io.debezium.time.ZonedTimestamp"), "-0043-03-15T12:00:00Z", undefined, (() => { const d = new Date(Date.UTC(2000, 2, 15, 12)); d.setUTCFullYear(-43); return d; })()],
    ["timestamptz infinity", s("string", "io.debezium.time.ZonedTimestamp"), "infinity", undefined, Number.POSITIVE_INFINITY],
    ["time(3) (ms)", s("int32", "io.debezium.time.Time"), 32400120, undefined, "09:00:00.12"],
    ["time (µs)", s("int64", "io.debezium.time.MicroTime"), 32400000123, undefined, "09:00:00.000123"],
    ["time 24:00:00", s("int64", "io.debezium.time.MicroTime"), 86400000000, undefined, "24:00:00"],
    ["MySQL TIME past a day", s("int64", "io.debezium.time.MicroTime"), 3020399000000, undefined, "838:59:59"],
    ["MySQL TIME negative", s("int64", "io.debezium.time.MicroTime"), -1000001, undefined, "-00:00:01.000001"],
    ["MySQL TIME negative, whole hours", s("int64", "io.debezium.time.MicroTime"), -3020399000000, undefined, "-838:59:59"],
    ["MySQL TIME(3) negative (ms)", s("int32", "io.debezium.time.Time"), -1500, undefined, "-00:00:01.5"],
    ["time (ns)", s("int64", "io.debezium.time.NanoTime"), 32400000123000, undefined, "09:00:00.000123"],
    ["time (connect)", s("int32", "org.apache.kafka.connect.data.Time"), 0, undefined, "00:00:00"],
    ["timetz (UTC)", s("string", "io.debezium.time.ZonedTime"), "06:30:00.5Z", undefined, "06:30:00.5+00"],
    ["interval ISO string", s("string", "io.debezium.time.Interval"), "P1Y2M3DT4H5M6.78S", undefined, { years: 1, months: 2, days: 3, hours: 4, minutes: 5, seconds: 6, milliseconds: 780 }],
    ["bytea (bytes)", s("bytes"), "AQL/", undefined, Buffer.from([1, 2, 255])],
    ["bytea (hex) with its source type", s("string", undefined, src("BYTEA")), "0102ff", { binaryHandlingMode: "hex" }, Buffer.from([1, 2, 255])],
    ["bytea (base64-url-safe) with its source type", s("string", undefined, src("BYTEA")), "AQL_", { binaryHandlingMode: "base64-url-safe" }, Buffer.from([1, 2, 255])],
    ["point", s("struct", "io.debezium.data.geometry.Point"), { x: 1.5, y: -2, wkb: "", srid: null }, undefined, { x: 1.5, y: -2 }],
    ["circle", s("struct", "io.debezium.data.geometry.Circle"), { center: { x: 1, y: 2 }, radius: 3 }, undefined, { x: 1, y: 2, radius: 3 }],
    ["text[] with nulls, quotes and empty strings", s("array", undefined, undefined, s("string")), ["x", "y z", null, "", "NULL", 'q"uote'], undefined, ["x", "y z", null, "", "NULL", 'q"uote']],
    ["empty int4[]", s("array", undefined, undefined, s("int32")), [], undefined, []],
    ["int8[] (as Postgres' text)", s("array", undefined, undefined, s("int64")), [9223372036854775807n, -1], undefined, ["9223372036854775807", "-1"]],
    ["numeric[] (pg parses it as floats)", s("array", undefined, undefined, s("bytes", "org.apache.kafka.connect.data.Decimal", { scale: "2" })), ["AJY=", null], undefined, [1.5, null]],
    ["numeric[] string mode with its source type", s("array", undefined, src("_NUMERIC"), s("string")), ["1.50", "NAN"], undefined, [1.5, Number.NaN]],
    ["date[]", s("array", undefined, undefined, s("int32", "io.debezium.time.Date")), [17109, null], undefined, [new Date(2016, 10, 4), null]],
    ["jsonb[]", s("array", undefined, undefined, s("string", "io.debezium.data.Json")), ['{"a": 1}', null], undefined, [{ a: 1 }, null]],
    ["enum[] (its elements' text, as postgres-cdc reads a type the database defines)", s("array", undefined, undefined, s("string", "io.debezium.data.Enum")), ["sad", "happy"], undefined, ["sad", "happy"]],
    ["empty enum[]", s("array", undefined, undefined, s("string", "io.debezium.data.Enum")), [], undefined, []],
    ["bytea[] (bytes)", s("array", undefined, undefined, s("bytes")), ["AQ==", null], undefined, [Buffer.from([1]), null]],
  ];

  it.each(cases.map(([what, ...rest]) => [what, ...rest] as const))("%s", (_what, schema, value, options, expected) => {
    const decoded = decodeLogical(value, schema, options);
    if (expected instanceof Date) {
      expect(decoded).toBeInstanceOf(Date);
      expect((decoded as Date).getTime()).toEqual(expected.getTime());
    } else if (typeof expected === "object" && expected !== null && !Array.isArray(expected) && !Buffer.isBuffer(expected)) {
      expect({ ...(decoded as object) }).toEqual(expected);
    } else {
      expect(decoded).toEqual(expected);
    }
  });

  it("keys are decoded like row values and joined as postgres-cdc joins them", () => {
    const keySchema = (fields: object[]) => ({ type: "struct", name: "k", optional: false, fields });
    const decimalKey = Buffer.from(JSON.stringify({ schema: keySchema([{ field: "amount", type: "bytes", name: "org.apache.kafka.connect.data.Decimal", parameters: { scale: "2" } }]), payload: { amount: "MDk=" } }));
    expect(decodeKey(decimalKey)).toEqual({ key: "123.45" });
    const composite = Buffer.from(`{"schema": ${JSON.stringify(keySchema([{ field: "a", type: "int64" }, { field: "b", type: "string" }]))}, "payload": {"a": 9223372036854775807, "b": "x"}}`);
    expect(decodeKey(composite)).toEqual({ key: "9223372036854775807,x" });
    expect(decodeKey(Buffer.from('{"id": 12345678901234567890}'))).toEqual({ key: "12345678901234567890" });
  });

  it("applies the truncate ExtractNewRecordState passes on as it is (rewrite-with-tombstone) in the unwrapped format", () => {
    const truncate = Buffer.from(JSON.stringify({ source: { version: "3.0.0.Final", connector: "postgresql", ts_ms: 1559033904961, table: "customers" }, op: "t", ts_ms: 1559033904999 }));
    expect(decodeMessage("debezium-unwrapped", null, truncate)).toEqual({ ok: true, change: { op: "truncate", key: "", before: null, after: null, commitTime: 1559033904961 } });
    // A row of a table with columns named op and source is a row (it has a key).
    expect(decodeMessage("debezium-unwrapped", Buffer.from('{"id":1}'), Buffer.from('{"id":1,"op":"t","source":{"a":1}}'))).toEqual({ ok: true, change: { op: "update", key: "1", before: null, after: { id: 1, op: "t", source: { a: 1 } } } });
  });

  it("reads a Decimal the JsonConverter writes as a JSON number (decimal.format=NUMERIC) to its exact digits and scale", () => {
    const decimal = (scale: number) => ({ type: "bytes", name: "org.apache.kafka.connect.data.Decimal", version: 1, parameters: { scale: String(scale), "connect.decimal.precision": "20" } });
    const fields = [
      { field: "id", type: "int32" },
      { field: "amount", optional: true, ...decimal(6) },
      { field: "price", optional: true, ...decimal(2) },
      { field: "tiny", optional: true, ...decimal(8) },
      { field: "whole", optional: true, ...decimal(0) },
      { field: "ratio", type: "float64", optional: true },
    ];
    const schema = { type: "struct", name: "e", fields: [{ field: "before", type: "struct", optional: true, fields }, { field: "after", type: "struct", optional: true, fields }, { field: "op", type: "string" }] };
    // The digits as the JsonConverter writes them (BigDecimal's text): more than a double holds, an exponent when small.
    const value = Buffer.from(`{"schema":${JSON.stringify(schema)},"payload":{"before":null,"after":{"id":1,"amount":12345678901234.123456,"price":-0.50,"tiny":1E-7,"whole":12345678901234567890,"ratio":0.1},"op":"c"}}`);
    expect(decodeMessage("debezium", Buffer.from('{"id":1}'), value)).toEqual({
      ok: true,
      change: { op: "insert", key: "1", before: null, after: { id: 1, amount: "12345678901234.123456", price: "-0.50", tiny: "0.00000010", whole: "12345678901234567890", ratio: 0.1 } },
    });
    // The same values as base64 bytes (decimal.format=BASE64, the default) decode alike.
    expect(decodeLogical(12.5, decimal(2))).toBe("12.50");
    expect(decodeLogical("BOI=", decimal(2))).toBe("12.50");
    // A key column written as a number.
    const key = Buffer.from(JSON.stringify({ schema: { type: "struct", name: "k", fields: [{ field: "code", ...decimal(2) }] }, payload: { code: 7.25 } }));
    expect(decodeKey(key)).toEqual({ key: "7.25" });
    // A plain fractional key names one row whether its message needs the exact parse (an integer past
    // 2^53) or not (its tombstone): before, the first gave "1.50", the tombstone "1.5".
    const big = Buffer.from('{"before":null,"after":{"id":1,"n":12345678901234567890},"op":"c"}');
    expect(decodeMessage("debezium", Buffer.from("1.50"), big)).toMatchObject({ ok: true, change: { key: "1.5" } });
    expect(decodeMessage("debezium", Buffer.from("1.50"), null)).toMatchObject({ ok: true, change: { op: "delete", key: "1.5" } });
  });

  it("keys a date or timestamp column by its UTC ISO text to the microsecond, whatever the host's time zone", () => {
    const keySchema = (fields: object[]) => ({ type: "struct", name: "k", optional: false, fields });
    const eventKey = (userId: number, micros: number) =>
      Buffer.from(JSON.stringify({ schema: keySchema([{ field: "user_id", type: "int32" }, { field: "occurred_at", type: "int64", name: "io.debezium.time.MicroTimestamp" }]), payload: { user_id: userId, occurred_at: micros } }));
    const zonedKey = (text: string) => Buffer.from(JSON.stringify({ schema: keySchema([{ field: "at", type: "string", name: "io.debezium.time.ZonedTimestamp" }]), payload: { at: text } }));
    const dateKey = (days: number) => Buffer.from(JSON.stringify({ schema: keySchema([{ field: "day", type: "int32", name: "io.debezium.time.Date" }]), payload: { day: days } }));
    const zone = process.env.TZ;
    try {
      for (const tz of ["UTC", "Europe/Berlin", "America/Los_Angeles"]) {
        process.env.TZ = tz;
        // Two events of one user 200 ms apart within one second: two rows (String() of their Dates was one key).
        expect(decodeKey(eventKey(7, 1700000000123456))).toEqual({ key: "7,2023-11-14T22:13:20.123456Z" });
        expect(decodeKey(eventKey(7, 1700000000323456))).toEqual({ key: "7,2023-11-14T22:13:20.323456Z" });
        // Two a microsecond apart: two rows too (toISOString's milliseconds made them one).
        expect(decodeKey(eventKey(7, 1700000000123457))).toEqual({ key: "7,2023-11-14T22:13:20.123457Z" });
        // Without digits past the millisecond, the millisecond's text.
        expect(decodeKey(eventKey(7, 1700000000123000))).toEqual({ key: "7,2023-11-14T22:13:20.123Z" });
        expect(decodeKey(zonedKey("2023-11-14T23:13:20.5+01:00"))).toEqual({ key: "2023-11-14T22:13:20.500Z" });
        expect(decodeKey(zonedKey("2023-11-14T23:13:20.000001+01:00"))).toEqual({ key: "2023-11-14T22:13:20.000001Z" });
        expect(decodeKey(dateKey(17109))).toEqual({ key: "2016-11-04T00:00:00.000Z" });
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });
});

describe("the unavailable-value placeholder in every form keeps the stored value", () => {
  const P = "__debezium_unavailable_value";
  const bytes = Buffer.from(P);
  // Debezium's own test constants (DecoderDifferences.java): the placeholder's bytes as integers, and
  // UUID.nameUUIDFromBytes of them.
  const ints = [95, 95, 100, 101, 98, 101, 122, 105, 117, 109, 95, 117, 110, 97, 118, 97, 105, 108, 97, 98, 108, 101, 95, 118, 97, 108, 117, 101];
  const uuid = "b68a35a7-17ad-35b3-af2a-ae46edb4545a";
  const fields = [
    { field: "id", type: "int32" },
    { field: "bio", type: "string" },
    { field: "doc", type: "string", name: "io.debezium.data.Json" },
    { field: "tags", type: "array", items: { type: "string" } },
    { field: "nums", type: "array", items: { type: "int32" } },
    { field: "bigs", type: "array", items: { type: "int64" } },
    { field: "days", type: "array", items: { type: "int32", name: "io.debezium.time.Date" } },
    { field: "uids", type: "array", items: { type: "string", name: "io.debezium.data.Uuid" } },
    { field: "blobs", type: "array", items: { type: "bytes" } },
    { field: "blob", type: "bytes" },
    { field: "blob_text", type: "string", parameters: { "__debezium.source.column.type": "BYTEA" } },
    { field: "attrs", type: "map", keys: { type: "string" }, values: { type: "string" } },
    { field: "attrs_json", type: "string", name: "io.debezium.data.Json" },
    { field: "visits", type: "int32" },
  ];
  const event = (after: Record<string, unknown>) => Buffer.from(JSON.stringify({ schema: { type: "struct", fields: [{ field: "before", type: "struct", fields }, { field: "after", type: "struct", fields }] }, payload: { op: "u", before: null, after, source: { ts_ms: 1 } } }));
  const placeholders = (p: string, binary: string | null) => {
    const b = Buffer.from(p);
    return {
      id: 1,
      bio: p,
      doc: p,
      tags: [p],
      nums: [...b].map((x) => (x > 127 ? x - 256 : x)),
      bigs: [...b].map((x) => (x > 127 ? x - 256 : x)),
      days: [...b].map((x) => (x > 127 ? x - 256 : x)),
      uids: [p === P ? uuid : "?"],
      blobs: [b.toString("base64")],
      blob: b.toString("base64"),
      blob_text: binary ?? p,
      attrs: { [p]: p },
      attrs_json: JSON.stringify({ [p]: p }),
      visits: 5,
    };
  };

  it("Debezium's default placeholder: text, in text, int, bigint, date, uuid and bytea arrays, as bytes, as hex or base64 text, as an hstore map or its JSON", () => {
    expect([...bytes]).toEqual(ints);
    for (const [mode, binary] of [
      ["bytes", null],
      ["hex", bytes.toString("hex")],
      ["hex", P],
      ["base64", bytes.toString("base64")],
      ["base64-url-safe", bytes.toString("base64").replace(/\+/g, "-").replace(/\//g, "_")],
    ] as const) {
      const result = decodeMessage("debezium", key(1, false), event(placeholders(P, binary)), { binaryHandlingMode: mode });
      expect(result).toEqual({ ok: true, change: { op: "update", key: "1", before: null, after: { id: 1, visits: 5 }, commitTime: 1 } });
    }
  });

  it("the connector's configured placeholder, and only it", () => {
    const custom = "<toast:kept>";
    const options: DecodeOptions = { unavailableValuePlaceholder: custom, binaryHandlingMode: "hex" };
    const after = { ...placeholders(custom, Buffer.from(custom).toString("hex")), uids: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"] };
    const result = decodeMessage("debezium", key(1, false), event(after), options);
    expect(result.ok && result.change.after).toEqual({ id: 1, uids: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"], visits: 5 });
    // The default placeholder is an ordinary value for a connector configured with another one.
    const other = decodeMessage("debezium", key(1, false), event({ id: 1, bio: P, tags: [P] }), options);
    expect(other.ok && other.change.after).toEqual({ id: 1, bio: P, tags: [P] });
  });

  it("an array holding real values besides is still a real value only when no element is the placeholder", () => {
    const result = decodeMessage("debezium", key(1, false), event({ id: 1, tags: ["a", null, "b"], nums: [95, 95] }));
    expect(result.ok && result.change.after).toEqual({ id: 1, tags: ["a", null, "b"], nums: [95, 95] });
  });
});

describe("exact JSON", () => {
  it("keeps integers past 2^53 exact and parses everything else as JSON.parse does", () => {
    const text = '{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1.5e300, "d": "12345678901234567890", "e": [1, true, null, {"f": "\\u00e9\\""}], "g": 9007199254740991}';
    expect(parseJsonExact(text)).toEqual({ a: 9223372036854775807n, b: -9223372036854775808n, c: 1.5e300, d: "12345678901234567890", e: [1, true, null, { f: 'é"' }], g: 9007199254740991 });
    for (const bad of ['{"a": 12345678901234567 ', '{"a": 12345678901234567,}', '[12345678901234567] x', '{"a" 12345678901234567}', '["\u0001", 12345678901234567]', "[01234567890123456]", '["\\x"]']) {
      expect(() => parseJsonExact(bad)).toThrow(SyntaxError);
    }
    expect(parseJsonExact('{"__proto__": 1, "s": "a\\\\", "t": "\\"q\\""}')).toEqual(JSON.parse('{"__proto__": 1, "s": "a\\\\", "t": "\\"q\\""}'));
  });

  it("a message whose decoded values hold an integer past 2^53 is decoded exactly; envelope fields it does not read do not matter", () => {
    const schema = { type: "struct", fields: [{ field: "after", type: "struct", fields: [{ field: "id", type: "int32" }, { field: "big", type: "int64" }, { field: "ns", type: "int64", name: "io.debezium.time.NanoTimestamp" }] }] };
    const payload = '{"before": null, "after": {"id": 1, "big": 9223372036854775807, "ns": 1709212455123456789}, "source": {"ts_ms": 1, "ts_ns": 1559033904863123000}, "op": "c"}';
    const result = decodeMessage("debezium", Buffer.from('{"id": 1}'), Buffer.from(`{"schema": ${JSON.stringify(schema)}, "payload": ${payload}}`));
    expect(result.ok && result.change.after).toEqual({ id: 1, big: "9223372036854775807", ns: new Date(2024, 1, 29, 13, 14, 15, 123) });
    const schemaless = decodeMessage("debezium", Buffer.from('{"id": 9007199254740993}'), Buffer.from(payload));
    expect(schemaless.ok && schemaless.change).toEqual({ op: "insert", key: "9007199254740993", before: null, after: { id: 1, big: "9223372036854775807", ns: "1709212455123456789" }, commitTime: 1 });
  });
});

describe("decodeMessage (debezium-unwrapped and json)", () => {
  it("reads ExtractNewRecordState rows with __deleted, __op and __source_ts_ms, and tombstones", () => {
    const row = (extra: Record<string, unknown>) => Buffer.from(JSON.stringify({ ...plain, ...extra }));
    expect(decodeMessage("debezium-unwrapped", key(1, false), row({ __op: "c", __table: "customers", __source_ts_ms: 77, __deleted: "false" }))).toEqual({
      ok: true,
      change: { op: "insert", key: "1", before: null, after: plain, commitTime: 77 },
    });
    expect(decodeMessage("debezium-unwrapped", key(1, false), row({ __deleted: "true" }))).toEqual({ ok: true, change: { op: "delete", key: "1", before: null, after: null } });
    expect(decodeMessage("debezium-unwrapped", key(1, false), row({}))).toEqual({ ok: true, change: { op: "update", key: "1", before: null, after: plain } });
    expect(decodeMessage("debezium-unwrapped", key(1, false), null)).toEqual({ ok: true, change: { op: "delete", key: "1", before: null, after: null, tombstone: true } });
    expect(decodeMessage("debezium-unwrapped", key(1, false), row({ __op: "z" }))).toEqual({ ok: false, reason: 'unknown __op "z"' });
  });

  it("reads plain JSON rows keyed by the message key (partial: a field left out keeps its value)", () => {
    expect(decodeMessage("json", Buffer.from("user-7"), Buffer.from('{"id": 7, "email": "x@example.com"}'))).toEqual({
      ok: true,
      change: { op: "update", key: "user-7", before: null, after: { id: 7, email: "x@example.com" }, partial: true },
    });
    expect(decodeMessage("json", Buffer.from("user-7"), null)).toEqual({ ok: true, change: { op: "delete", key: "user-7", before: null, after: null, tombstone: true } });
  });
});

describe("malformed messages", () => {
  it("has at least 30 distinct cases", () => {
    expect(new Set(MALFORMED.map((m) => m.name)).size).toBe(MALFORMED.length);
    expect(MALFORMED.length).toBeGreaterThanOrEqual(30);
  });

  it.each(MALFORMED.map((m) => [m.name, m] as const))("%s gives its reason", (_name, m) => {
    const result = decodeMessage("debezium", m.key, m.value);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      if (typeof m.reason === "string") expect(result.reason).toBe(m.reason);
      else expect(result.reason).toMatch(m.reason);
    }
  });
});

describe("a key of one integer column without a schema (read without parsing its JSON)", () => {
  it("gives what parsing it gives, for every integer, column name and spacing", () => {
    const cases: [string, string | undefined][] = [
      ['{"id":42}', "42"],
      ['{"id":0}', "0"],
      ['{"id":-7}', "-7"],
      ['{"user_id":123456789012345}', "123456789012345"],
      // Not the canonical form, or not one integer: parsed as JSON (and decided there).
      ['{"id":-0}', "0"],
      ['{"id":1234567890123456}', "1234567890123456"],
      ['{"id":1.5}', "1.5"],
      ['{"id":1e3}', "1000"],
      ['{"id": 42}', "42"],
      ['{"a\\"b":42}', "42"],
      ['{"id":42,"tenant":7}', "42,7"],
      ['{"id":null}', undefined],
      // A raw control character makes the text no JSON: the key is the text itself, as before.
      ['{"a\tb":4}', '{"a\tb":4}'],
    ];
    for (const [text, expected] of cases) expect(decodeKey(Buffer.from(text)).key, text).toBe(expected);
    // The same key spaced out is parsed: both ways agree.
    for (const n of [0, 1, -1, 9, 10, 99, 100, -123, 2 ** 31, -(2 ** 40), 999_999_999_999_999, -999_999_999_999_999]) {
      for (const column of ["id", "user id", "ключ", "a'b"]) {
        const tight = decodeKey(Buffer.from(`{"${column}":${n}}`));
        expect(tight).toEqual(decodeKey(Buffer.from(`{ "${column}" : ${n} }`)));
        expect(tight).toEqual({ key: String(n) });
      }
    }
  });
});
