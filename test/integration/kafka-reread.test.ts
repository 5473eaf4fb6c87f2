// A property added on a Kafka source that is past its topic's start: the Run replays the topic from its
// earliest offset (on every partition the daemon holds), so the state ends as a fresh consumer group's
// on the new config; a topic that keeps every row's latest message (compacted, or kept whole) gives
// back every row.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { listRuns } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { dumpState, type Obj } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

const kafka = new Kafka({ clientId: "kafka-reread-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });

const config = (topic: string, groupId: string, withName: boolean): Obj[] => [
  { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId } },
  { class: "model", id: "users" },
  { class: "source", id: "users_topic", type: "kafka-debezium", appId: "bus", modelId: "users", options: { topic, format: "json" }, mapping: { id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_topic", options: { column: "id" } },
  { class: "property", id: "email", type: "email", sourceId: "users_topic", options: { column: "email" } },
  ...(withName ? [{ class: "property", id: "name", type: "string", sourceId: "users_topic", options: { column: "name" } }] : []),
  { class: "group", id: "named_a", modelId: "users", rules: [{ propertyId: withName ? "name" : "email", op: "like", match: withName ? "a%" : "%a%" }] },
];

describe("kafka-debezium re-read", () => {
  it("replays the topic from its earliest offsets for a property added on it, and ends as a fresh consumer", { timeout: 120_000 }, async () => {
    const topic = `users-${randomBytes(4).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    const send = (ids: number[], round: number) =>
      producer.send({ topic, messages: ids.map((id) => ({ key: String(id), value: JSON.stringify({ id, email: `u${id}@example.com`, name: `${round % 2 ? "a" : "b"}name${id}r${round}` }) })) });
    await send(Array.from({ length: 60 }, (_, i) => i + 1), 1);

    const work = mkdtempSync(join(tmpdir(), "kafka-reread-"));
    const file = join(work, "config.json");
    const start = async (path: string, objects: Obj[], state: string) => {
      writeFileSync(path, JSON.stringify(objects));
      const daemon = await Daemon.start({ config: path, state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
      if (typeof daemon === "number") throw new Error(`exit ${daemon}`);
      return daemon;
    };
    const daemon = await start(file, config(topic, `g-${topic}`, false), join(work, "state"));
    const oracleRef: { daemon?: Daemon } = {};
    try {
      await waitFor("the first messages", async () => (daemon.state.countOf("records", "users") === 60 ? true : undefined), 60_000);
      await send([5, 6, 61], 2);
      await waitFor("the next messages", async () => (daemon.state.countOf("records", "users") === 61 ? true : undefined));

      writeFileSync(file, JSON.stringify(config(topic, `g-${topic}`, true)));
      expect(await daemon.reload("test")).toBe("applied");
      await send([7, 62], 3);
      await waitFor("the replay done", async () => (daemon.runs?.pending().length === 0 && daemon.state.countOf("records", "users") === 62 ? true : undefined), 60_000);
      await waitFor("the replay done", async () => (daemon.state.getRecord("users", "62")?.values.name === "aname62r3" ? true : undefined), 60_000);

      const oracle = await start(join(work, "oracle.json"), config(topic, `oracle-${topic}`, true), join(work, "oracle-state"));
      oracleRef.daemon = oracle;
      // Both hold every message of every partition (one partition's batch may commit before another's).
      const ends = await (async () => {
        const a = kafka.admin();
        await a.connect();
        try {
          return await a.fetchTopicOffsets(topic);
        } finally {
          await a.disconnect();
        }
      })();
      const readAll = (d: Daemon) => ends.every((e) => d.state.position(`kafka:bus:${topic}:${e.partition}`) === String(BigInt(e.high) - 1n) || e.high === "0");
      await waitFor("the daemon read every partition", async () => (readAll(daemon) && daemon.runs?.pending().length === 0 ? true : undefined), 60_000);
      await waitFor("the oracle read the topic", async () => (readAll(oracle) && oracle.runs?.pending().length === 0 ? true : undefined), 60_000);
      const dump = (d: Daemon) => dumpState(d.state, ["users"], [], ["named_a"], []);
      expect(dump(daemon)).toEqual(dump(oracle));
      expect(daemon.state.getRecord("users", "1")?.values.name).toBe("aname1r1");
      expect(daemon.state.countOf("members", "named_a")).toBeGreaterThan(0);
    } finally {
      await producer.disconnect();
      for (const d of [daemon, oracleRef.daemon]) {
        if (!d) continue;
        await d.drain("SIGTERM");
        await d.finished;
      }
      rmSync(work, { recursive: true, force: true });
    }
  });

  it("completes a replay of a topic written in transactions: its first offset an aborted message's, its last a commit marker", { timeout: 120_000 }, async () => {
    const topic = `tx-${randomBytes(4).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer({ transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const inTransaction = async (ids: number[], round: number, commit: boolean) => {
      const tx = await producer.transaction();
      await tx.send({ topic, messages: ids.map((id) => ({ key: String(id), value: JSON.stringify({ id, email: `u${id}@example.com`, name: `aname${id}r${round}` }) })) });
      if (commit) await tx.commit();
      else await tx.abort();
    };
    // Offsets 0-2 aborted (a consumer gets none of them), 3 their marker; 4-8 committed, 9 their marker.
    await inTransaction([1, 2, 3], 0, false);
    await inTransaction([1, 2, 3, 4, 5], 1, true);
    const work = mkdtempSync(join(tmpdir(), "kafka-tx-"));
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(config(topic, `g-${topic}`, false)));
    const daemon = await Daemon.start({ config: file, state: join(work, "state"), http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
    if (typeof daemon === "number") throw new Error(`exit ${daemon}`);
    try {
      await waitFor("the committed messages", async () => (daemon.state.position(`kafka:bus:${topic}:0`) === "8" ? true : undefined), 60_000);
      expect(daemon.state.countOf("records", "users")).toBe(5);
      writeFileSync(file, JSON.stringify(config(topic, `g-${topic}`, true)));
      expect(await daemon.reload("test")).toBe("applied");
      // Before, the replay waited for a message at offset 0 and one at offset 9, neither of which a consumer gets.
      await waitFor("the replay done", async () => (daemon.runs?.pending().length === 0 ? true : undefined), 60_000);
      expect(listRuns(daemon.state).every((r) => r.state === "complete")).toBe(true);
      expect([1, 2, 3, 4, 5].map((id) => daemon.state.getRecord("users", String(id))?.values.name)).toEqual(["aname1r1", "aname2r1", "aname3r1", "aname4r1", "aname5r1"]);
      expect(daemon.state.countOf("members", "named_a")).toBe(5);
    } finally {
      await producer.disconnect();
      await daemon.drain("SIGTERM");
      await daemon.finished;
      rmSync(work, { recursive: true, force: true });
    }
  });

  it("reads nothing again when only where it copies what it cannot decode changes (its dead-letter topic)", { timeout: 120_000 }, async () => {
    const topic = `ops-${randomBytes(4).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    const message = (id: number, name: string) => ({ key: String(id), value: JSON.stringify({ id, email: `u${id}@example.com`, name }) });
    const send = (id: number, name: string) => producer.send({ topic, messages: [message(id, name)] });
    const big = message(21, `a${"x".repeat(3000)}`);
    const objects = (options: Obj): Obj[] =>
      config(topic, `g-${topic}`, true).map((o) => (o.id === "users_topic" ? { ...o, options: { ...(o.options as Obj), ...options } } : o));
    const work = mkdtempSync(join(tmpdir(), "kafka-ops-"));
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(objects({ deadLetterTopic: `${topic}-dlq`, maxMessageBytes: 2000 })));
    const daemon = await Daemon.start({ config: file, state: join(work, "state"), http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
    if (typeof daemon === "number") throw new Error(`exit ${daemon}`);
    try {
      for (let id = 1; id <= 20; id += 1) await send(id, `aname${id}`);
      await producer.send({ topic, messages: [big] });
      await waitFor("the messages", async () => (daemon.state.position(`kafka:bus:${topic}:0`) === "20" ? true : undefined), 60_000);
      expect(daemon.state.countOf("records", "users")).toBe(20);
      expect(daemon.state.sourceDeadLetters().map((l) => l.reason)).toEqual([`the message is ${big.key.length + big.value.length} bytes, over the source's maxMessageBytes 2000`]);
      const members = daemon.state.countOf("members", "named_a");
      expect(members).toBe(20);

      // Before, this change removed every record of the source (their exports as deletes) and replayed the topic.
      writeFileSync(file, JSON.stringify(objects({ deadLetterTopic: `${topic}-dlq2`, maxMessageBytes: 2000 })));
      expect(await daemon.reload("test")).toBe("applied");
      expect(listRuns(daemon.state)).toEqual([]);
      expect(daemon.state.countOf("records", "users")).toBe(20);
      expect(daemon.state.countOf("members", "named_a")).toBe(members);
      // What comes next is read under the new config: a message it cannot take is copied to the new topic.
      await send(22, "aname22");
      await producer.send({ topic, messages: [{ ...big, key: "23" }] });
      await waitFor("the next messages", async () => (daemon.state.position(`kafka:bus:${topic}:0`) === "22" ? true : undefined), 60_000);
      expect(daemon.state.getRecord("users", "22")?.values.name).toBe("aname22");
      expect(daemon.state.sourceDeadLetters()).toHaveLength(2);
      expect(listRuns(daemon.state)).toEqual([]);
      const copies = kafka.consumer({ groupId: `dlq2-${topic}` });
      await copies.connect();
      await copies.subscribe({ topic: `${topic}-dlq2`, fromBeginning: true });
      const copied: string[] = [];
      await copies.run({ eachMessage: async ({ message }) => void copied.push(message.key?.toString() ?? "") });
      await waitFor("the copy in the new dead-letter topic", async () => (copied.length > 0 ? true : undefined), 30_000);
      await copies.disconnect();
      expect(copied).toEqual(["23"]);
    } finally {
      await producer.disconnect();
      await daemon.drain("SIGTERM");
      await daemon.finished;
      rmSync(work, { recursive: true, force: true });
    }
  });
});
