// Rows keyed by a timestamp column (an events table keyed by user and time) through the
// kafka-debezium source against the real broker: each row keeps its own key to the microsecond.
// Before 2026-12-03 a Date key part was written with String(), whole seconds in the host's time
// zone, so two events of a user within one second were one row (the second replaced the first) and
// the user's count was short.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { kafkaDebeziumSource } from "../../connectors/kafka/debezium-source.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

type Obj = Record<string, unknown>;
const kafka = new Kafka({ clientId: "kafka-timestamp-keys-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });

const config = (users: string, events: string, groupId: string): Obj[] => [
  { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId } },
  { class: "model", id: "users" },
  { class: "source", id: "users_topic", type: "kafka-debezium", appId: "bus", modelId: "users", options: { topic: users }, mapping: { id: "user_id" } },
  { class: "source", id: "events_topic", type: "kafka-debezium", appId: "bus", modelId: "users", options: { topic: events }, mapping: { user_id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_topic", options: { column: "id" } },
  { class: "property", id: "event_count", type: "integer", sourceId: "events_topic", options: { column: "kind", aggregationMethod: "count" } },
  { class: "property", id: "last_kind", type: "string", sourceId: "events_topic", options: { column: "kind", aggregationMethod: "most recent value", sortColumn: "occurred_at" } },
];

const keySchema = { type: "struct", name: "shop.public.events.Key", optional: false, fields: [{ field: "user_id", type: "int32", optional: false }, { field: "occurred_at", type: "int64", optional: false, name: "io.debezium.time.MicroTimestamp", version: 1 }] };
const rowFields = [...keySchema.fields, { field: "kind", type: "string", optional: true }];
const envelopeSchema = {
  type: "struct",
  name: "shop.public.events.Envelope",
  optional: false,
  fields: [
    { type: "struct", fields: rowFields, optional: true, name: "shop.public.events.Value", field: "before" },
    { type: "struct", fields: rowFields, optional: true, name: "shop.public.events.Value", field: "after" },
    { type: "string", optional: false, field: "op" },
  ],
};
const eventKey = (userId: number, micros: number) => JSON.stringify({ schema: keySchema, payload: { user_id: userId, occurred_at: micros } });
const eventValue = (op: string, userId: number, micros: number, kind: string) =>
  JSON.stringify({ schema: envelopeSchema, payload: op === "d" ? { before: { user_id: userId, occurred_at: micros, kind: null }, after: null, op } : { before: null, after: { user_id: userId, occurred_at: micros, kind }, op } });

async function topic(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString("hex")}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: name, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();
  return name;
}

describe("kafka-debezium rows keyed by a timestamp", () => {
  let run: CdcRun | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  it("keeps events of one user within one second, and within one millisecond, as rows of their own, and deletes the one its key names", async () => {
    const users = await topic("users");
    const events = await topic("events");
    const producer = kafka.producer();
    await producer.connect();
    // 2023-11-14 22:13:20.123456, .323456 and .723456 UTC: one second, three rows; and .123457, a
    // microsecond after the first: a row of its own too.
    const at = [1700000000123456, 1700000000323456, 1700000000723456, 1700000000123457];
    await producer.send({ topic: users, messages: [{ key: JSON.stringify({ id: 7 }), value: JSON.stringify({ before: null, after: { id: 7 }, op: "c" }) }] });
    await producer.send({
      topic: events,
      messages: [
        { key: eventKey(7, at[0] as number), value: eventValue("c", 7, at[0] as number, "view") },
        { key: eventKey(7, at[1] as number), value: eventValue("c", 7, at[1] as number, "cart") },
        { key: eventKey(7, at[2] as number), value: eventValue("c", 7, at[2] as number, "buy") },
        { key: eventKey(7, at[3] as number), value: eventValue("c", 7, at[3] as number, "view") },
      ],
    });
    run = startSource(validConfig(config(users, events, `g-${events}`)), kafkaDebeziumSource);
    const current = run;
    await waitFor("the events", async () => (current.store.position(`kafka:bus:${events}:0`) === "3" && current.store.countOf("records", "users") === 1 ? true : undefined));
    expect([...current.store.rowsOf("events_topic")].map(([key]) => key).sort()).toEqual(["7,2023-11-14T22:13:20.123456Z", "7,2023-11-14T22:13:20.123457Z", "7,2023-11-14T22:13:20.323456Z", "7,2023-11-14T22:13:20.723456Z"]);
    expect(current.store.getRecord("users", "7")?.values).toEqual({ user_id: 7, event_count: 4, last_kind: "buy" });
    // The last event deleted (and its tombstone): the one before it is the most recent again.
    await producer.send({ topic: events, messages: [{ key: eventKey(7, at[2] as number), value: eventValue("d", 7, at[2] as number, "") }, { key: eventKey(7, at[2] as number), value: null }] });
    await producer.disconnect();
    await waitFor("the delete", async () => (current.store.position(`kafka:bus:${events}:0`) === "5" ? true : undefined));
    expect(current.store.getRecord("users", "7")?.values).toEqual({ user_id: 7, event_count: 3, last_kind: "cart" });
    expect(current.store.sourceDeadLetters()).toEqual([]);
  });
});
