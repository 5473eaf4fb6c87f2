// The kafka-debezium source against the real Kafka broker: Debezium envelopes (with and without
// schemas, every logical type) become exact property values, Debezium's documented examples for
// every op apply exactly, the unavailable-value placeholder of an imported connector config keeps
// stored values in every form, offsets are committed only after the state holding their changes is
// durable, and malformed messages become dead letters (and DLQ copies) while the partition keeps moving.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { Kafka, logLevel, type Admin } from "kafkajs";
import { kafkaDebeziumSource } from "../../connectors/kafka/debezium-source.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { ANNE_ENCODED, envelope, key } from "../fixtures/debezium.js";
import { DOC_CREATE, DOC_DELETE, DOC_TRUNCATE, DOC_UPDATE, docKey, docMessage, docSnapshotRead, docUpdateFull } from "../fixtures/debezium-docs.js";
import { changeEvent, columnSql, placeholderValue, rowPayload, type Column, type Modes } from "../fixtures/debezium-encode.js";
import { MALFORMED } from "../fixtures/malformed.js";
import { importDebeziumCommand } from "../../daemon/commands/import-debezium.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

type Obj = Record<string, unknown>;
const kafka = new Kafka({ clientId: "kafka-source-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });

const config = (topic: string, groupId: string, source: Obj = {}): Obj[] => [
  { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId } },
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
      opens: "09:00:00",
      opens_ns: "09:00:00.000123",
      prefs: '{"newsletter":true}',
      tags: ["gold", "early"],
      holidays: [Date.UTC(2024, 1, 29), Date.UTC(2024, 2, 1)],
      vip: true,
    });
    // The update's row has no tags column (an after-image lists every column the table has: dropped).
    expect(run.store.getRecord("customers", "2")?.values).toMatchObject({ customer_id: 2, first_name: "Bobby", email: "bob@example.com", vip: true, tags: [] });
    expect(run.store.getRecord("customers", "3")).toBeUndefined();
  });

  it("applies Debezium's documented examples: snapshot reads marked first, true and last, create, update without and with REPLICA IDENTITY FULL, delete, tombstone, truncate", async () => {
    const topic = await topicWith();
    const producer = kafka.producer();
    await producer.connect();
    const nothing = { balance: null, ratio: null, birthday: null, seen_ms: null, seen_us: null, seen_ns: null, created_at: null, opens: null, opens_ns: null, prefs: null, tags: [], holidays: [], vip: null };
    const row = (id: number, first: string, email: string) => ({ id, first_name: first, last_name: "Walker", email });
    const values = (id: number, first: string, email: string) => ({ customer_id: id, first_name: first, email, ...nothing });
    await producer.send({
      topic,
      messages: [
        { key: key(1002, true), value: docSnapshotRead("first", row(1002, "George", "gbailey@foobar.com")) },
        { key: key(1003, true), value: docSnapshotRead("true", row(1003, "Edward", "ed@walker.com")) },
        { key: key(1004, true), value: docSnapshotRead("last", row(1004, "Anne", "annek@noanswer.org")) },
        { key: docKey(), value: docMessage(DOC_CREATE) },
      ],
    });
    run = startSource(validConfig(config(topic, `g-${topic}`)), kafkaDebeziumSource);
    const records = () => Object.fromEntries([...(run?.store.recordsOf("customers") ?? [])].map((r) => [r.id, r.values]));
    await waitFor("snapshot and create", async () => (run?.store.countOf("records", "customers") === 4 ? true : undefined));
    expect(records()).toEqual({
      "1": values(1, "Anne", "annek@noanswer.org"),
      "1002": values(1002, "George", "gbailey@foobar.com"),
      "1003": values(1003, "Edward", "ed@walker.com"),
      "1004": values(1004, "Anne", "annek@noanswer.org"),
    });
    await producer.send({ topic, messages: [{ key: docKey(), value: docMessage(DOC_UPDATE) }] });
    await waitFor("update", async () => (run?.store.getRecord("customers", "1")?.values.first_name === "Anne Marie" ? true : undefined));
    expect(records()["1"]).toEqual(values(1, "Anne Marie", "annek@noanswer.org"));
    // With REPLICA IDENTITY FULL the event also carries the old row; the new one is what is applied.
    await producer.send({ topic, messages: [{ key: key(1003, true), value: envelope("u", row(1003, "Edward", "ed@walker.com"), row(1003, "Ed", "ed@walker.com"), 1559033904900, true) }, { key: docKey(), value: docUpdateFull() }] });
    await waitFor("full update", async () => (run?.store.getRecord("customers", "1003")?.values.first_name === "Ed" ? true : undefined));
    expect(records()).toEqual({
      "1": values(1, "Anne Marie", "annek@noanswer.org"),
      "1002": values(1002, "George", "gbailey@foobar.com"),
      "1003": values(1003, "Ed", "ed@walker.com"),
      "1004": values(1004, "Anne", "annek@noanswer.org"),
    });
    // A delete, then its tombstone: the record goes, and the tombstone is a harmless repeat.
    await producer.send({ topic, messages: [{ key: docKey(), value: docMessage(DOC_DELETE) }, { key: docKey(), value: null }] });
    await waitFor("delete and tombstone", async () => (run?.store.position(`kafka:bus:${topic}:0`) === "8" ? true : undefined));
    expect(Object.keys(records()).sort()).toEqual(["1002", "1003", "1004"]);
    // A tombstone alone (its delete compacted away) deletes by key.
    await producer.send({ topic, messages: [{ key: key(1002, true), value: null }] });
    await waitFor("tombstone alone", async () => (run?.store.getRecord("customers", "1002") === undefined ? true : undefined));
    expect(Object.keys(records()).sort()).toEqual(["1003", "1004"]);
    await producer.send({ topic, messages: [{ key: null, value: docMessage(DOC_TRUNCATE) }] });
    await waitFor("truncate", async () => (run?.store.countOf("records", "customers") === 0 ? true : undefined));
    await producer.disconnect();
    expect(run.store.sourceDeadLetters()).toEqual([]);
  });

  it("keeps stored values for the placeholder of an imported Debezium config, in every form Debezium writes it", async () => {
    const db = await createTestDatabase(testPgUrl(), "toast");
    const work = mkdtempSync(join(tmpdir(), "import-placeholder-"));
    try {
      const columns: Column[] = [
        { name: "id", sql: "int4 PRIMARY KEY", kind: "int4", typeName: "int4" },
        { name: "bio", sql: "text", kind: "text", typeName: "text" },
        { name: "doc", sql: "jsonb", kind: "json", typeName: "jsonb" },
        { name: "blob", sql: "bytea", kind: "bytea", typeName: "bytea" },
        { name: "tags", sql: "text[]", kind: "text", typeName: "_text", array: true },
        { name: "nums", sql: "int4[]", kind: "int4", typeName: "_int4", array: true },
        { name: "bigs", sql: "int8[]", kind: "int8", typeName: "_int8", array: true },
        { name: "days", sql: "date[]", kind: "date", typeName: "_date", array: true },
        { name: "uids", sql: "uuid[]", kind: "uuid", typeName: "_uuid", array: true },
        { name: "blobs", sql: "bytea[]", kind: "bytea", typeName: "_bytea", array: true },
        { name: "visits", sql: "int4", kind: "int4", typeName: "int4" },
      ];
      await db.query(`CREATE TABLE customers (${columns.map((c) => `${c.name} ${c.sql}`).join(", ")})`);
      await db.query(
        `INSERT INTO customers VALUES (1, 'long bio ✓', '{"a": [1, 2]}', '\\x00ff10', '{a,NULL,b}', '{1,2}', '{9223372036854775807}', '{2016-11-04,NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"\\\\x01"}', 1)`,
      );
      const connectorFile = join(work, "connector.json");
      const connector = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.dbname": db.name,
        "plugin.name": "pgoutput",
        "table.include.list": "public.customers",
        "unavailable.value.placeholder": "<toast kept>",
        "binary.handling.mode": "hex",
      };
      writeFileSync(connectorFile, JSON.stringify({ name: "shop", config: connector }));
      expect(await importDebeziumCommand(connectorFile, { out: join(work, "config"), databaseUrl: db.url })).toBe(0);
      const app = (parse(readFileSync(join(work, "config", "shop.app.yml"), "utf8")) as { options: { debezium: Record<string, string> } }[])[0];
      expect(app?.options.debezium).toMatchObject({ "unavailable.value.placeholder": "<toast kept>", "binary.handling.mode": "hex" });
      const placeholder = app?.options.debezium["unavailable.value.placeholder"] ?? "";
      const modes: Modes = { decimal: "precise", time: "adaptive", binary: "hex", propagate: true, placeholder };

      const row = (await db.query<Record<string, unknown>>(`SELECT ${columnSql(columns)} FROM customers`)).rows[0] ?? {};
      const id = columns[0] as Column;
      const created = changeEvent(columns, modes, id, 1, { op: "c", after: rowPayload(columns, row, modes), tsMs: 1, table: "customers" });
      // Every column but visits unavailable, as Debezium writes it for this connector...
      const unavailable = Object.fromEntries(columns.map((c) => [c.name, c.name === "id" ? 1 : c.name === "visits" ? 2 : placeholderValue(c, modes)]));
      // ...and the bytea placeholder hex-encoded, and the default placeholder as an ordinary value.
      const hexBlob = { ...unavailable, blob: Buffer.from(placeholder).toString("hex"), visits: 3 };
      const defaultIsData = { ...unavailable, bio: "__debezium_unavailable_value", visits: 4 };
      const topic = await topicWith();
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic,
        messages: [created, ...[unavailable, hexBlob, defaultIsData].map((after, i) => changeEvent(columns, modes, id, 1, { op: "u", after, tsMs: 2 + i, table: "customers" }))],
      });
      await producer.disconnect();
      const properties = columns.map((c) => ({ class: "property", id: `p_${c.name}`, type: c.name === "id" ? "integer" : "string", isArray: c.array === true, ...(c.name === "id" ? { unique: true } : {}), sourceId: "customers_topic", options: { column: c.name } }));
      run = startSource(
        validConfig([
          { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId: `g-${topic}` } },
          { class: "model", id: "customers" },
          {
            class: "source",
            id: "customers_topic",
            type: "kafka-debezium",
            appId: "bus",
            modelId: "customers",
            options: { topic, unavailableValuePlaceholder: placeholder, binaryHandlingMode: app?.options.debezium["binary.handling.mode"] },
            mapping: { id: "p_id" },
          },
          ...properties,
        ]),
        kafkaDebeziumSource,
      );
      await waitFor("every update", async () => (run?.store.getRecord("customers", "1")?.values.p_visits === "4" ? true : undefined)).catch((error: Error) => {
        throw new Error(`${error.message}: ${JSON.stringify(run?.store.getRecord("customers", "1")?.values)} ${JSON.stringify(run?.store.sourceDeadLetters().map((l) => l.reason))}`);
      });
      expect(run.store.getRecord("customers", "1")?.values).toEqual({
        p_id: 1,
        p_bio: "__debezium_unavailable_value",
        p_doc: '{"a":[1,2]}',
        p_blob: null,
        p_tags: ["a", "b"],
        p_nums: ["1", "2"],
        p_bigs: ["9223372036854775807"],
        p_days: [new Date(2016, 10, 4).toISOString()],
        p_uids: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
        p_blobs: [],
        p_visits: "4",
      });
      // bytea is invalid as a string property from either source; the invalid reasons are kept too.
      expect(run.store.getRecord("customers", "1")?.invalid).toEqual({ p_blob: "Invalid string value", p_blobs: "Invalid string value" });
      expect(run.store.sourceDeadLetters()).toEqual([]);
    } finally {
      rmSync(work, { recursive: true, force: true });
      await db.drop();
    }
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

  // Backpressure holds the handler before its next message. It used to pause kafkajs's partitions: with
  // none left to fetch, kafkajs's fetcher slept its maxWaitTime (5 s by default), and a resume did not
  // wake it, so each pause cost up to 5 s of reading after the core had caught up.
  it("holds messages while paused and reads them as soon as it is resumed", async () => {
    const topic = await topicWith();
    const groupId = `g-${topic}`;
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ key: key(1, false), value: envelope("c", null, { id: 1, first_name: "A" }, 1, false) }] });
      run = startSource(validConfig(config(topic, groupId)), kafkaDebeziumSource);
      await waitFor("first message applied", async () => (run?.store.countOf("records", "customers") === 1 ? true : undefined));
      run.connector.pause();
      // Long enough for kafkajs's fetcher to find every partition paused, if they were.
      await new Promise((r) => setTimeout(r, 1500));
      await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ key: key(10 + i, false), value: envelope("c", null, { id: 10 + i, first_name: "B" }, 2, false) })) });
      await new Promise((r) => setTimeout(r, 1500));
      expect(run.received()).toBe(1);
      run.connector.resume();
      // Well under kafkajs's 5 s maxWaitTime: a fetcher asleep would miss it.
      await waitFor("the held messages applied", async () => (run?.store.countOf("records", "customers") === 11 ? true : undefined), 3000);
      expect(run.received()).toBe(11);
    } finally {
      await producer.disconnect();
    }
  });

  it("keeps the partition moving when the dead-letter topic refuses a copy for good, and says so in the dead letter", async () => {
    const topic = await topicWith();
    const dlq = `${topic}-small-dlq`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: dlq, numPartitions: 1, configEntries: [{ name: "max.message.bytes", value: "1000" }] }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    const junk = { key: key(1, false), value: Buffer.from(`not json ${"z".repeat(3000)}`) };
    await producer.send({ topic, messages: [junk, { key: key(2, false), value: envelope("c", null, { id: 2, first_name: "after" }, 1, false) }] });
    await producer.disconnect();
    run = startSource(validConfig(config(topic, `g-${topic}`, { deadLetterTopic: dlq })), kafkaDebeziumSource);
    // Before, the consumer crashed without a restart on the refused copy, and the source stalled.
    await waitFor("both messages handled", async () => (run?.store.position(`kafka:bus:${topic}:0`) === "1" ? true : undefined), 30_000);
    expect(run.store.getRecord("customers", "2")?.values.first_name).toBe("after");
    const letters = run.store.sourceDeadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]?.reason).toMatch(new RegExp(`^the value is not valid JSON: .* \\(not copied to ${dlq}: .+\\)$`));
    expect(letters[0]?.change.deadLetter?.payload).toMatchObject({ offset: "0", value: junk.value.toString("base64"), truncated: false });
  });

  it("applies again, but sets aside only once, what comes again after its group's offsets fell behind the state", async () => {
    const topic = await topicWith();
    const producer = kafka.producer();
    await producer.connect();
    const messages = [
      { key: key(1, false), value: envelope("c", null, { id: 1, first_name: "one" }, 1, false) },
      { key: key(2, false), value: Buffer.from("not json") },
      { key: key(1, false), value: envelope("u", null, { id: 1, first_name: "uno" }, 2, false) },
    ];
    await producer.send({ topic, messages });
    const stateDir = mkdtempSync(join(tmpdir(), "kafka-again-"));
    const handled = (n: number) => async () => (run?.store.position(`kafka:bus:${topic}:0`) === String(n - 1) ? true : undefined);
    run = startSource(validConfig(config(topic, `g-${topic}`)), kafkaDebeziumSource, stateDir);
    await waitFor("the first messages", handled(3));
    await run.stop({ keepState: true });
    // Another group (the committed offsets of the first one lost, as a crash between the state's commit
    // and the offsets' leaves them behind): the topic comes again from its start, onto the same state.
    await producer.send({ topic, messages: [{ key: key(3, false), value: Buffer.from("[]") }, { key: key(2, false), value: envelope("c", null, { id: 2, first_name: "two" }, 3, false) }] });
    await producer.disconnect();
    run = startSource(validConfig(config(topic, `again-${topic}`)), kafkaDebeziumSource, stateDir);
    await waitFor("every message", handled(5));
    expect(run.store.getRecord("customers", "1")?.values.first_name).toBe("uno");
    expect(run.store.getRecord("customers", "2")?.values.first_name).toBe("two");
    // Before, the first undecodable message was stored twice.
    expect(run.store.sourceDeadLetters().map((l) => `${l.change.position.position} ${l.reason}`)).toEqual([
      expect.stringMatching(/^1 the value is not valid JSON/),
      "3 the value is an array, not an object",
    ]);
  });

  it("sets malformed messages aside as dead letters and keeps the partition moving", async () => {
    const topic = await topicWith();
    const dlq = `${topic}-dlq`;
    const producer = kafka.producer();
    await producer.connect();
    const huge = { key: key(99, false), value: envelope("c", null, { id: 99, first_name: "x".repeat(70_000) }, 1, false) };
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
      expect(letter?.change.deadLetter?.payload).toMatchObject({ topic, partition: 0, offset: String(2 * i), value: m.value === null ? null : m.value.toString("base64"), truncated: false });
    });
    expect(letters.at(-1)?.reason).toBe(`the message is ${huge.key.length + huge.value.length} bytes, over the source's maxMessageBytes 20000`);
    // Its value is over the 64 KiB kept of it (the key is not): the payload says it was cut.
    expect(huge.value.length).toBeGreaterThan(65_536);
    expect(letters.at(-1)?.change.deadLetter?.payload).toEqual({
      topic,
      partition: 0,
      offset: String(messages.length - 1),
      bytes: huge.key.length + huge.value.length,
      key: huge.key.toString("base64"),
      value: huge.value.subarray(0, 65_536).toString("base64"),
      truncated: true,
    });

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
