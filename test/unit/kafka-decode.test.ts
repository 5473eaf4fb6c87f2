// Decoding Kafka messages: Debezium envelopes with and without schemas for every op, Debezium's
// logical types, unwrapped rows, plain JSON rows, and the exact reason for every malformed message.
import { describe, expect, it } from "vitest";
import { decodeDecimal, decodeMessage } from "../../connectors/kafka/decode.js";
import { ANNE_DECODED, ANNE_ENCODED, envelope, key } from "../fixtures/debezium.js";
import { MALFORMED } from "../fixtures/malformed.js";

const plain = { id: 1, first_name: "Anne", last_name: "Kretchmar", email: "annek@noanswer.org" };

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
      expect(decodeMessage("debezium", key(1, withSchema), null)).toEqual({ ok: true, change: { op: "delete", key: "1", before: null, after: null } });
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

  it("decodes every logical type from the schema", () => {
    expect(decodeMessage("debezium", key(1, true), envelope("c", null, ANNE_ENCODED, 1, true))).toEqual({
      ok: true,
      change: { op: "insert", key: "1", before: null, after: ANNE_DECODED, commitTime: 1 },
    });
  });

  it("passes values through as they are without schemas", () => {
    const result = decodeMessage("debezium", key(1, false), envelope("c", null, ANNE_ENCODED, 1, false));
    expect(result).toEqual({ ok: true, change: { op: "insert", key: "1", before: null, after: ANNE_ENCODED, commitTime: 1 } });
  });

  it("leaves out __debezium_unavailable_value so the stored value is kept", () => {
    const result = decodeMessage("debezium", key(1, true), envelope("u", null, { ...plain, email: "__debezium_unavailable_value" }, 1, true));
    expect(result.ok && result.change.after).toEqual({ id: 1, first_name: "Anne", last_name: "Kretchmar" });
  });

  it("decodes two's-complement decimals of any size exactly", () => {
    expect(decodeDecimal("MDk=", 2)).toBe("123.45");
    expect(decodeDecimal("/z0=", 3)).toBe("-0.195");
    expect(decodeDecimal("AQ==", 0)).toBe("1");
    expect(decodeDecimal("AQ==", 4)).toBe("0.0001");
    expect(decodeDecimal(Buffer.from("0de0b6b3a7640000", "hex").toString("base64"), 18)).toBe("1.000000000000000000");
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
    expect(decodeMessage("debezium-unwrapped", key(1, false), null)).toEqual({ ok: true, change: { op: "delete", key: "1", before: null, after: null } });
    expect(decodeMessage("debezium-unwrapped", key(1, false), row({ __op: "z" }))).toEqual({ ok: false, reason: 'unknown __op "z"' });
  });

  it("reads plain JSON rows keyed by the message key", () => {
    expect(decodeMessage("json", Buffer.from("user-7"), Buffer.from('{"id": 7, "email": "x@example.com"}'))).toEqual({
      ok: true,
      change: { op: "update", key: "user-7", before: null, after: { id: 7, email: "x@example.com" } },
    });
    expect(decodeMessage("json", Buffer.from("user-7"), null)).toEqual({ ok: true, change: { op: "delete", key: "user-7", before: null, after: null } });
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
