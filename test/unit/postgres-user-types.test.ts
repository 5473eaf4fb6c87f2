// Types a database defines: parsers are registered by OID in pg's process-wide table, and an OID two
// apps' clusters give different kinds of type is read as text for both (never one's parser reading
// the other's values).
import pg from "pg";
import { describe, expect, it } from "vitest";
import { registerTypesOf } from "../../connectors/postgres/types.js";

const client = (rows: { oid: number; array: boolean; base: number }[]) => ({ query: async () => ({ rows }) }) as unknown as pg.ClientBase;
const parserOf = (oid: number) => pg.types.getTypeParser(oid, "text") as (text: string) => unknown;

describe("registerTypesOf", () => {
  it("reads an enum array element by element, a domain as its builtin base type, and an OID another cluster gives another kind of type as text", async () => {
    const conflicts: number[] = [];
    await registerTypesOf(client([{ oid: 990_001, array: true, base: 990_000 }, { oid: 990_002, array: false, base: 23 }, { oid: 990_003, array: true, base: 23 }]), (oid) => conflicts.push(oid));
    expect(parserOf(990_001)("{happy,sad}")).toEqual(["happy", "sad"]);
    expect(parserOf(990_002)("42")).toBe(42);
    expect(parserOf(990_003)("{1,2}")).toEqual([1, 2]);
    // The same kinds again (another database of the same cluster, a reconnect): nothing changes.
    await registerTypesOf(client([{ oid: 990_001, array: true, base: 990_500 }, { oid: 990_002, array: false, base: 23 }]), (oid) => conflicts.push(oid));
    expect(conflicts).toEqual([]);
    // Another cluster: 990_001 is a domain over int4 there, 990_003 an array of text.
    await registerTypesOf(client([{ oid: 990_001, array: false, base: 23 }, { oid: 990_003, array: true, base: 25 }]), (oid) => conflicts.push(oid));
    expect(conflicts).toEqual([990_001, 990_003]);
    expect(parserOf(990_001)("{happy,sad}")).toBe("{happy,sad}");
    expect(parserOf(990_003)("{1,2}")).toBe("{1,2}");
    expect(parserOf(990_002)("42")).toBe(42);
  });
});
