// The kafka-debezium source against the real Kafka broker: Debezium envelopes (with and without
// schemas, every logical type) become exact property values, offsets are committed only after the
// state holding their changes is durable, and malformed messages become dead letters (and DLQ
// copies) while the partition keeps moving.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import { Kafka, logLevel, type Admin } from "kafkajs";
import { kafkaDebeziumSource } from "../../connectors/kafka/debezium-source.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { ANNE_ENCODED, envelope, key } from "../fixtures/debezium.js";
import { MALFORMED } from "../fixtures/malformed.js";

type Obj = Record<string, unknown>;
const kafka = new Kafka({ clientId: "kafka-source-test", brokers: inject("kafkaBrokers"), logLevel: logLevel.NOTHING });

const config = (topic: string, groupId: string, source: Obj = {}): Obj[] => [
  { class: "app", id: "bus", type: "kafka", options: { brokers: inject("kafkaBrokers"), groupId } },
  { class: "model", id: "customers" },
  { class: "source", id: "customers_topic", type: "kafka-debezium", appId: "bus", modelId: "customers", options: { topic, ...source }, mapping: { id: "customer_id" } },
  ...(
    [
      ["customer_id", "integer", "id", { unique: true }],
      ["first_name", "string", "first_name"],
      ["email", "email", "email"],
      ["balance", "float", "balance"],
      ["ratio", "float", "ratio"],
      ["birthday", "date", "birthday"],
      ["seen_ms", "date", "seen_ms"],
      ["seen_us", "date", "seen_us"],
      ["seen_ns", "date", "seen_ns"],
      ["created_at", "date", "created_at"],
      ["opens", "string", "opens"],
      ["opens_ns", "string", "opens_ns"],
      ["prefs", "string", "prefs"],
      ["tags", "string", "tags", { isArray: true }],
      ["holidays", "date", "holidays", { isArray: true }],
      ["vip", "boolean", "vip"],
    ] as [string, string, string, Obj?][]
  ).map(([id, type, column, extra]) => ({ class: "property", id, type, sourceId: "customers_topic", options: { column }, ...extra })),
];

async function topicWith(partitions = 1): Promise<string> {
  const topic = `customers-${randomBytes(4).toString("hex")}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  await admin.disconnect();
  return topic;
}

async function committed(admin: Admin, groupId: string, topic: string): Promise<string | undefined> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return offsets?.partitions[0]?.offset;
}

describe("kafka-debezium source", () => {
  let run: CdcRun | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  it("applies Debezium envelopes with and without schemas to exact property values", async () => {
    const topic = await topicWith();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: [
        { key: key(1, true), value: envelope("r", null, ANNE_ENCODED, 1559033800000, true, "true") },
        { key: key(2, false), value: envelope("c", null, { id: 2, first_name: "Bob", email: "BOB@example.com", vip: false, tags: ["x"] }, 1559033904863, false) },
        { key: key(3, true), value: envelope("c", null, { id: 3, first_name: "Cy" }, 1559033904900, true) },
        { key: key(2, false), value: envelope("u", null, { id: 2, first_name: "Bobby", email: "bob@example.com", vip: true }, 1559033904950, false) },
        { key: key(3, true), value: envelope("d", { id: 3 }, null, 1559033905000, true) },
        { key: key(3, true), value: null },
      ],
    });
    await producer.disconnect();
    run = startSource(validConfig(config(topic, `g-${topic}`)), kafkaDebeziumSource);
    await waitFor("records", async () => (run?.store.countOf("records", "customers") === 2 && run.store.getRecord("customers", "2")?.values.first_name === "Bobby" ? true : undefined));
    expect(run.store.getRecord("customers", "1")?.values).toEqual({
      customer_id: 1,
      first_name: "Anne",
      email: "annek@noanswer.org",
      balance: 123.45,
      ratio: -0.195,
      birthday: Date.UTC(2024, 1, 29),
      seen_ms: 1709212455123,
      seen_us: 1709212455123,
      seen_ns: 1709212455123,
      created_at: Date.UTC(2024, 1, 29, 13, 14, 15, 123),
      opens: "09:00:00.000",
      opens_ns: "09:00:00.000123456",
      prefs: '{"newsletter":true}',
      tags: ["gold", "early"],
      holidays: [Date.UTC(2024, 1, 29), Date.UTC(2024, 2, 1)],
      vip: true,
    });
    expect(run.store.getRecord("customers", "2")?.values).toMatchObject({ customer_id: 2, first_name: "Bobby", email: "bob@example.com", vip: true, tags: ["x"] });
    expect(run.store.getRecord("customers", "3")).toBeUndefined();
  });

  it("reads every topic matching a /regex/ topic and reports consumer lag per partition", async () => {
    const prefix = `pattern-${randomBytes(3).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: `${prefix}.a` }, { topic: `${prefix}.b` }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: `${prefix}.a`, messages: [{ key: key(1, false), value: envelope("c", null, { id: 1, first_name: "A" }, 1, false) }] });
    await producer.send({ topic: `${prefix}.b`, messages: [{ key: key(2, false), value: envelope("c", null, { id: 2, first_name: "B" }, 1, false) }] });
    await producer.disconnect();
    run = startSource(validConfig(config(`/^${prefix}\\..*$/`, `g-${prefix}`)), kafkaDebeziumSource);
    await waitFor("both topics", async () => (run?.store.countOf("records", "customers") === 2 ? true : undefined));
    expect(run.lag.get(`${prefix}.a/0`)).toBe(0);
    expect(run.lag.get(`${prefix}.b/0`)).toBe(0);
  });

  it("commits offsets only after the state holding their changes is durable", async () => {
    const topic = await topicWith();
    const groupId = `g-${topic}`;
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ key: key(1, false), value: envelope("c", null, { id: 1, first_name: "A" }, 1, false) }] });
      run = startSource(validConfig(config(topic, groupId)), kafkaDebeziumSource);
      await waitFor("first offset committed", async () => ((await committed(admin, groupId, topic)) === "1" ? true : undefined));
      run.hold();
      await producer.send({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ key: key(10 + i, false), value: envelope("c", null, { id: 10 + i, first_name: "B" }, 2, false) })) });
      await waitFor("changes received", async () => (run && run.received() >= 21 ? true : undefined));
      for (let i = 0; i < 6; i += 1) {
        await new Promise((r) => setTimeout(r, 500));
        expect(await committed(admin, groupId, topic)).toBe("1");
      }
      expect(run.store.countOf("records", "customers")).toBe(1);
      run.release();
      await waitFor("all offsets committed", async () => ((await committed(admin, groupId, topic)) === "21" ? true : undefined));
      expect(run.store.countOf("records", "customers")).toBe(21);
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  it("sets malformed messages aside as dead letters and keeps the partition moving", async () => {
    const topic = await topicWith();
    const dlq = `${topic}-dlq`;
    const producer = kafka.producer();
    await producer.connect();
    const huge = { key: key(99, false), value: envelope("c", null, { id: 99, first_name: "x".repeat(50_000) }, 1, false) };
    const messages = [
      ...MALFORMED.flatMap((m, i) => [{ key: m.key, value: m.value }, { key: key(100 + i, false), value: envelope("c", null, { id: 100 + i, first_name: `ok${i}` }, 1, false) }]),
      huge,
    ];
    await producer.send({ topic, messages });
    await producer.disconnect();
    run = startSource(validConfig(config(topic, `g-${topic}`, { deadLetterTopic: dlq, maxMessageBytes: 20_000 })), kafkaDebeziumSource);
    await waitFor("every message handled", async () => (run?.store.position(`kafka:bus:${topic}:0`) === String(messages.length - 1) ? true : undefined));
    expect(run.store.countOf("records", "customers")).toBe(MALFORMED.length);
    const letters = run.store.sourceDeadLetters();
    expect(letters).toHaveLength(MALFORMED.length + 1);
    MALFORMED.forEach((m, i) => {
      const letter = letters[i];
      if (typeof m.reason === "string") expect(letter?.reason).toBe(m.reason);
      else expect(letter?.reason).toMatch(m.reason);
      expect(letter?.kind).toBe("message");
      expect(letter?.change.deadLetter?.payload).toMatchObject({ topic, partition: 0, offset: String(2 * i), value: m.value === null ? null : m.value.toString("base64") });
    });
    expect(letters.at(-1)?.reason).toBe(`the message is ${huge.key.length + huge.value.length} bytes, over the source's maxMessageBytes 20000`);

    const consumer = kafka.consumer({ groupId: `dlq-${topic}` });
    await consumer.connect();
    await consumer.subscribe({ topic: dlq, fromBeginning: true });
    const copies: { reason: string; origin: string }[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        copies.push({ reason: message.headers?.["x-grouparoo-reason"]?.toString() ?? "", origin: message.headers?.["x-grouparoo-origin"]?.toString() ?? "" });
      },
    });
    await waitFor("DLQ copies", async () => (copies.length === MALFORMED.length + 1 ? true : undefined));
    await consumer.disconnect();
    expect(copies[0]).toEqual({ reason: letters[0]?.reason, origin: `${topic}/0/0` });
  });
});
