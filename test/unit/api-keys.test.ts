// API keys in memory: digests only, found whatever their position, permissions by type, flags and
// topics (write does not imply read), the secret as a browser or a client presents it, and cursors.
import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "../../daemon/api/cursor.js";
import { ApiKeys, permits, presentedSecret } from "../../daemon/api/keys.js";
import { apiMode } from "../../daemon/api/keys.js";
import { apiFlagProblems } from "../../daemon/flags.js";

const SECRETS = ["full-0123456789abcdef", "read-0123456789abcdef", "topic-0123456789abcdef"];
const keys = new ApiKeys([
  { class: "apiKey", id: "ops", apiKey: SECRETS[0] as string },
  { class: "apiKey", id: "reader", name: "Read only", type: "specific", apiKey: SECRETS[1] as string, permissionAllRead: true },
  { class: "apiKey", id: "runner", type: "specific", apiKey: SECRETS[2] as string, permissions: [{ topic: "run", read: false, write: true }, { topic: "record", read: true, write: false }] },
]);

describe("API keys", () => {
  it("finds each key by its secret, and no other", () => {
    expect(SECRETS.map((s) => keys.authenticate(s)?.id)).toEqual(["ops", "reader", "runner"]);
    expect(keys.authenticate("full-0123456789abcdeF")).toBeUndefined();
    expect(keys.authenticate("")).toBeUndefined();
    expect(keys.authenticate(`${SECRETS[0] as string} `)).toBeUndefined();
  });

  it("crosses to the API thread as digests (structured clone) and authenticates the same", () => {
    const handed = structuredClone(keys.digests());
    for (const secret of SECRETS) expect(JSON.stringify(handed, (_key, value: unknown) => (value instanceof Set ? [...value] : value))).not.toContain(secret);
    const there = ApiKeys.fromDigests(handed);
    expect(SECRETS.map((s) => there.authenticate(s)?.id)).toEqual(["ops", "reader", "runner"]);
    expect(there.authenticate("read-0123456789abcdeF")).toBeUndefined();
    const runner = there.authenticate(SECRETS[2] as string);
    expect(runner && [permits(runner, "run", "write"), permits(runner, "run", "read"), permits(runner, "record", "read")]).toEqual([true, false, true]);
  });

  it("keeps no secret: neither in what it lists nor in itself", () => {
    expect(keys.list().map((k) => [k.id, k.name, k.type])).toEqual([["ops", "ops", "full"], ["reader", "Read only", "specific"], ["runner", "runner", "specific"]]);
    const inside = JSON.stringify(keys, (_key, value: unknown) => (value instanceof Set ? [...value] : value));
    for (const secret of SECRETS) expect(inside).not.toContain(secret);
  });

  it("gives a full key everything, a specific key what its flags and topics say", () => {
    const [ops, reader, runner] = SECRETS.map((s) => keys.authenticate(s)) as [NonNullable<ReturnType<ApiKeys["authenticate"]>>, NonNullable<ReturnType<ApiKeys["authenticate"]>>, NonNullable<ReturnType<ApiKeys["authenticate"]>>];
    expect(permits(ops, "deadLetter", "write") && permits(ops, "metrics", "read")).toBe(true);
    expect(permits(reader, "status", "read") && permits(reader, "metrics", "read")).toBe(true);
    expect(permits(reader, "run", "write")).toBe(false);
    expect([permits(runner, "run", "write"), permits(runner, "run", "read"), permits(runner, "record", "read"), permits(runner, "status", "read")]).toEqual([true, false, true, false]);
  });

  it("reads the secret from a bearer token or HTTP Basic's password", () => {
    expect(presentedSecret("Bearer abc.def")).toBe("abc.def");
    expect(presentedSecret("bearer   abc")).toBe("abc");
    expect(presentedSecret(`Basic ${Buffer.from("anyone:s3cret:with:colons").toString("base64")}`)).toBe("s3cret:with:colons");
    expect(presentedSecret(`Basic ${Buffer.from("no-colon").toString("base64")}`)).toBeUndefined();
    expect(presentedSecret("Token abc")).toBeUndefined();
    expect(presentedSecret(undefined)).toBeUndefined();
  });

  it("serves the API with keys, without them only when insecure, else not at all", () => {
    expect([apiMode(2, false), apiMode(2, true), apiMode(0, true), apiMode(0, false)]).toEqual(["keys", "keys", "insecure", "off"]);
    expect(apiFlagProblems({ http: "127.0.0.1:9464", apiInsecure: true })).toEqual([]);
    expect(apiFlagProblems({ http: "[::1]:9464", apiInsecure: true })).toEqual([]);
    expect(apiFlagProblems({ http: "localhost:9464", apiInsecure: true })).toEqual([]);
    expect(apiFlagProblems({ http: "0.0.0.0:9464" })).toEqual([]);
    expect(apiFlagProblems({ http: "10.0.0.5:9464", apiInsecure: true })).toEqual(["--api-insecure serves the API without keys, so only on a loopback address (127.0.0.1, ::1, localhost); --http is 10.0.0.5:9464"]);
  });

  it("hands out cursors that only the same listing takes back", () => {
    const cursor = encodeCursor("members:vips", "1042");
    expect(decodeCursor(cursor, "members:vips", "string")).toBe("1042");
    expect(decodeCursor(undefined, "members:vips", "string")).toBeUndefined();
    expect(() => decodeCursor(cursor, "members:high", "string")).toThrow("cursor is for members:vips, not members:high");
    expect(() => decodeCursor(cursor, "members:vips", "number")).toThrow("is not a cursor this API handed out");
    expect(() => decodeCursor("%%%", "members:vips", "string")).toThrow("is not a cursor this API handed out");
    expect(decodeCursor(encodeCursor("dead-letters:*:*", 17), "dead-letters:*:*", "number")).toBe(17);
  });
});
