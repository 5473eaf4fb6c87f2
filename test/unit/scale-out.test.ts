// Relay and workers without services (README, "Relay and workers"): the checks of partitioned models,
// the relay's routing rule (every change to its record's partition, rows of other sources by the
// primary key they map, moves and deletes through the relay's routes), and the relay events' codec
// (every value postgres-cdc reads comes back as it was).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Change } from "../../core/change.js";
import { RelayRouter, RelayRoutingError, type RouteState } from "../../core/relay.js";
import { decodeRelayEvent, encodeRelayEvent } from "../../connectors/kafka/relay-codec.js";
import { validateObjects } from "../../daemon/config/validate.js";
import { asRaw, find, validConfigObjects } from "../helpers/config.js";

type Obj = Record<string, unknown>;

function partitioned(mutate: (objects: Obj[]) => void = () => undefined) {
  const objects = validConfigObjects();
  (find(objects, "users") as Obj).partitioned = { appId: "bus", partitions: 6 };
  (find(objects, "email") as Obj).unique = false;
  mutate(objects);
  return validateObjects(asRaw(objects));
}

const errors = (result: ReturnType<typeof partitioned>) => result.issues.filter((i) => i.severity === "error").map(({ objectClass, id, field, message }) => ({ objectClass, id, field, message }));

describe("partitioned models: config", () => {
  it("accepts a model whose other sources find records by the primary key", () => {
    const result = partitioned();
    expect(errors(result)).toEqual([]);
    expect(result.config?.models[0]?.partitioned).toEqual({ appId: "bus", partitions: 6, replicationFactor: 1 });
  });

  it("names each rule a partitioned model breaks", () => {
    const result = partitioned((objects) => {
      (find(objects, "users") as Obj).partitioned = { appId: "hooks" };
      (find(objects, "email") as Obj).unique = true;
      (find(objects, "purchases_table") as Obj).mapping = { user_email: "email" };
    });
    expect(errors(result)).toEqual([
      { objectClass: "model", id: "users", field: "partitioned.appId", message: 'app "hooks" is a webhook app; the model\'s topics need a kafka app' },
      {
        objectClass: "source",
        id: "purchases_table",
        field: "mapping.user_email",
        message: 'model "users" is partitioned by its primary key "user_id": a source other than its primary one must find its record by that key (this one maps "email"); map a column holding "user_id" instead, e.g. through a view joining the table to the record\'s key',
      },
      { objectClass: "property", id: "email", field: "unique", message: 'model "users" is partitioned: only its primary key "user_id" can be unique (a worker cannot see the values other workers\' records hold); make "email" not unique' },
    ]);
  });

  it("refuses topics a partitioned model does not have to itself on its cluster", () => {
    const topicErrors = (result: ReturnType<typeof partitioned>) => errors(result).filter((e) => /topic|changelog/.test(e.field ?? ""));
    // The changelog is the model's topic.
    expect(topicErrors(partitioned((objects) => ((find(objects, "users") as Obj).partitioned = { appId: "bus", topic: "users.changes", changelogTopic: "users.changes" })))).toEqual([
      { objectClass: "model", id: "users", field: "partitioned.changelogTopic", message: 'the changelog must be another topic than the model\'s topic "users.changes": the workers would read their own state records back as changes' },
    ]);
    // Two models sharing a topic (one's topic the other's changelog), and a kafka-topic destination writing into one.
    const shared = partitioned((objects) => {
      (find(objects, "users") as Obj).partitioned = { appId: "bus", topic: "shop.users" };
      objects.push({ class: "model", id: "accounts", partitioned: { appId: "bus", topic: "shop.accounts", changelogTopic: "shop.users" } });
      objects.push({ class: "destination", id: "echo", type: "kafka-topic", appId: "bus", modelId: "users", collection: "model", syncMode: "sync", options: { topic: "shop.users.changelog" }, mapping: { id: "user_id" } });
    });
    expect(topicErrors(shared)).toEqual([
      { objectClass: "model", id: "accounts", field: "partitioned.changelogTopic", message: 'topic "shop.users" is already model "users"\'s topic on the cluster of app "bus": each partitioned model needs a topic and a changelog of its own' },
      { objectClass: "destination", id: "echo", field: "options.topic", message: 'topic "shop.users.changelog" is model "users"\'s changelog on the cluster of app "bus": its workers would read the exports as changes; write to another topic' },
    ]);
    // Topics of their own: nothing to say.
    expect(topicErrors(partitioned((objects) => objects.push({ class: "model", id: "accounts", partitioned: { appId: "bus", topic: "shop.accounts" } })))).toEqual([]);
  });
});

class Routes implements RouteState {
  readonly map = new Map<string, { route: string; snapshot?: string }>();
  getRoute(s: string, k: string) {
    return this.map.get(`${s}/${k}`)?.route;
  }
  setRoute(s: string, k: string, route: string, snapshot?: string) {
    this.map.set(`${s}/${k}`, { route, ...(snapshot ? { snapshot } : {}) });
  }
  deleteRoute(s: string, k: string) {
    this.map.delete(`${s}/${k}`);
  }
  dropRoutes(s: string, except?: string) {
    for (const [key, value] of this.map) if (key.startsWith(`${s}/`) && (except === undefined || value.snapshot !== except)) this.map.delete(key);
  }
}

describe("the relay's routing rule", () => {
  const result = partitioned();
  const domain = result.domain;
  if (!domain) throw new Error("invalid test config");
  const router = new RelayRouter(domain, new Set(["users"]));
  const change = (sourceId: string, op: Change["op"], key: string, after: Record<string, unknown> | null, extra: Partial<Change> = {}): Change => ({ sourceId, op, key, before: op === "delete" ? { id: Number(key) } : null, after, position: { stream: "postgres:shop_db", position: "0/1" }, commitTime: 1, ...extra });
  const targets = (events: ReturnType<RelayRouter["route"]>) => events.map((e) => [e.change.op, e.target.kind === "record" ? e.target.key : e.target.kind]);

  it("keys a record's row by its id and another source's row by the primary key it maps, before the record exists", () => {
    const routes = new Routes();
    expect(targets(router.route(change("purchases_table", "insert", "900", { id: 900, user_id: "7", amount: 5 }), routes))).toEqual([["insert", "7"]]);
    expect(targets(router.route(change("users_table", "insert", "7", { id: 7, email: "a@b.c" }), routes))).toEqual([["insert", "7"]]);
  });

  it("moves a row whose key changed (a delete to its old record first) and routes deletes by the route it kept", () => {
    const routes = new Routes();
    router.route(change("purchases_table", "insert", "900", { id: 900, user_id: 7 }), routes);
    expect(targets(router.route(change("purchases_table", "update", "900", { id: 900, user_id: 8 }), routes))).toEqual([
      ["delete", "7"],
      ["update", "8"],
    ]);
    expect(targets(router.route(change("purchases_table", "update", "900", { id: 900, amount: 3 }), routes))).toEqual([["update", "8"]]);
    expect(targets(router.route(change("purchases_table", "delete", "900", null), routes))).toEqual([["delete", "8"]]);
    expect(routes.map.size).toBe(0);
    expect(targets(router.route(change("purchases_table", "delete", "901", null), routes))).toEqual([]);
  });

  it("splits a row moved to another key (movedFrom) into a delete of its old key and an insert of its new one", () => {
    const routes = new Routes();
    const moved = router.route(change("users_table", "insert", "8", { id: 8, email: "a@b.c" }, { before: { id: 7 }, movedFrom: "7" }), routes);
    expect(targets(moved)).toEqual([
      ["delete", "7"],
      ["insert", "8"],
    ]);
    expect(moved.map((e) => [e.change.key, e.change.before, e.change.after, "movedFrom" in e.change])).toEqual([
      ["7", { id: 7 }, null, false],
      ["8", null, { id: 8, email: "a@b.c" }, false],
    ]);
    router.route(change("purchases_table", "insert", "900", { id: 900, user_id: 7 }), routes);
    expect(targets(router.route(change("purchases_table", "insert", "901", { id: 901, user_id: 8 }, { before: { id: 900 }, movedFrom: "900" }), routes))).toEqual([
      ["delete", "7"],
      ["insert", "8"],
    ]);
    expect([...routes.map.keys()]).toEqual(["purchases_table/901"]);
  });

  it("sends truncates and snapshot ends to every partition, undecodable input to the first", () => {
    const routes = new Routes();
    router.route(change("purchases_table", "snapshot", "1", { id: 1, user_id: 1 }, { snapshotId: "s1" }), routes);
    router.route(change("purchases_table", "insert", "2", { id: 2, user_id: 1 }), routes);
    const end = router.route(change("users_table", "marker", "", null, { snapshotComplete: { snapshotId: "s1", sourceIds: ["users_table", "purchases_table"] } }), routes);
    expect(targets(end)).toEqual([["marker", "every-partition"]]);
    expect([...routes.map.keys()]).toEqual(["purchases_table/1"]);
    expect(targets(router.route(change("purchases_table", "truncate", "", null), routes))).toEqual([["truncate", "every-partition"]]);
    expect(routes.map.size).toBe(0);
    expect(targets(router.route(change("users_table", "marker", "", null, { deadLetter: { reason: "bad", payload: 1 } }), routes))).toEqual([["marker", "first-partition"]]);
    expect(router.route(change("users_table", "marker", "", null), routes)).toEqual([]);
  });

  it("refuses a primary source whose mapped key is not its row key", () => {
    expect(() => router.route(change("users_table", "insert", "7", { id: 8 }), new Routes())).toThrow(RelayRoutingError);
  });
});

describe("relay events", () => {
  const roundTrip = (change: Change) => {
    const message = encodeRelayEvent(change, "k", "shop");
    const decoded = decodeRelayEvent(message.value, message.headers);
    if (!decoded.ok) throw new Error(decoded.reason);
    return decoded.change;
  };

  it("are Debezium envelopes carrying what postgres-cdc read, values JSON cannot hold included", () => {
    const interval = Object.assign(Object.create({ toPostgres: () => "1 day" }) as object, { days: 1 });
    const after = { id: 1, at: new Date(1_700_000_000_123), day: new Date(Number.NaN), bytes: Buffer.from([0, 255, 7]), nan: Number.NaN, inf: -Infinity, zero: -0, text: "2026-01-01T00:00:00.000Z", dates: [new Date(5), null], json: { a: [1, "x"] }, interval, none: null, toast: undefined };
    const change: Change = { sourceId: "users_table", op: "update", key: "1", before: { id: 1 }, after, position: { stream: "s", position: "0/9" }, commitTime: 42, snapshotId: "s9" };
    const message = encodeRelayEvent(change, "1", "shop");
    const envelope = JSON.parse(message.value.toString()) as Obj;
    expect(envelope.op).toBe("u");
    expect((envelope.after as Obj).at).toBe(1_700_000_000_123);
    expect((envelope.after as Obj).bytes).toBe("AP8H");
    expect((envelope.source as Obj).ts_ms).toBe(42);
    const back = roundTrip(change);
    expect(back.after?.at).toEqual(after.at);
    expect(Number.isNaN((back.after?.day as Date).getTime())).toBe(true);
    expect(back.after?.bytes).toEqual(after.bytes);
    expect(Object.is(back.after?.nan, Number.NaN)).toBe(true);
    expect(back.after?.inf).toBe(-Infinity);
    expect(Object.is(back.after?.zero, -0)).toBe(true);
    expect(back.after?.text).toBe("2026-01-01T00:00:00.000Z");
    expect(back.after?.dates).toEqual([new Date(5), null]);
    expect(back.after?.json).toEqual({ a: [1, "x"] });
    expect(Object.getPrototypeOf(back.after?.interval)).not.toBe(Object.prototype);
    // A value not sent (an unchanged TOAST value) stays one: the worker keeps the stored value, where a null would clear it.
    expect("toast" in (envelope.after as Obj)).toBe(false);
    expect("toast" in (back.after ?? {}) && back.after?.toast === undefined).toBe(true);
    expect(message.headers["grouparoo.format"]).toBe("2");
    expect(back.partial).toBeUndefined();
    // A relay of an earlier version: no format header, values not sent left out unmarked; its updates keep the columns they leave out.
    const { "grouparoo.format": _format, "grouparoo.types": _types, ...older } = message.headers;
    const old = decodeRelayEvent(message.value, older);
    expect(old.ok && old.change.partial).toBe(true);
    expect({ sourceId: back.sourceId, op: back.op, key: back.key, before: back.before, commitTime: back.commitTime, snapshotId: back.snapshotId }).toEqual({ sourceId: "users_table", op: "update", key: "1", before: { id: 1 }, commitTime: 42, snapshotId: "s9" });
  });

  it("round-trip any JSON row and any op exactly", () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.date({ noInvalidDate: true }), fc.array(fc.integer(), { maxLength: 3 }));
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), value, { maxKeys: 6 }), fc.constantFrom<Change["op"]>("insert", "update", "delete", "snapshot", "truncate", "marker"), (row, op) => {
        const change: Change = { sourceId: "s", op, key: "k", before: null, after: row, position: { stream: "x", position: "1" }, commitTime: 3 };
        const back = roundTrip(change);
        expect(back.op).toBe(op);
        expect(back.after).toEqual(row);
      }),
      { numRuns: 300 },
    );
  });

  it("set aside what is not a relay event, with the reason", () => {
    expect(decodeRelayEvent(Buffer.from("{}"), {})).toEqual({ ok: false, reason: "not a relay event: the grouparoo.source, grouparoo.key or grouparoo.op header is missing" });
    expect(decodeRelayEvent(Buffer.from("{"), { "grouparoo.source": "s", "grouparoo.key": "k", "grouparoo.op": "insert" })).toMatchObject({ ok: false, reason: expect.stringContaining("the relay event cannot be decoded") as unknown });
    expect(decodeRelayEvent(Buffer.from("{}"), { "grouparoo.source": "s", "grouparoo.key": "k", "grouparoo.op": "upsert" })).toEqual({ ok: false, reason: 'unknown op "upsert" in the grouparoo.op header' });
  });
});
