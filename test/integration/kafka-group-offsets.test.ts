// The kafka-debezium source against the real broker when the consumer group's committed offsets and
// the state disagree. The state is the truth: what it holds of a partition is not applied again when
// the group's offsets fell behind it (a SIGKILL between a batch's commit in the state and its
// offsets' commit), and a partition it holds nothing of is read from its start even when the group
// has read past it (an empty `--state` on the group an earlier state used).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { kafkaDebeziumSource } from "../../connectors/kafka/debezium-source.js";
import type { Change } from "../../core/change.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

type Obj = Record<string, unknown>;
const kafka = new Kafka({ clientId: "kafka-group-offsets-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });

const config = (topic: string, groupId: string): Obj[] => [
  { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId } },
  { class: "model", id: "users" },
  { class: "source", id: "users_topic", type: "kafka-debezium", appId: "bus", modelId: "users", options: { topic }, mapping: { id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_topic", options: { column: "id" } },
  { class: "property", id: "name", type: "string", sourceId: "users_topic", options: { column: "name" } },
];
const key = (id: number) => JSON.stringify({ id });
const create = (id: number, name: string) => JSON.stringify({ before: null, after: { id, name }, op: "c", source: { ts_ms: 1 } });
const TRUNCATE = JSON.stringify({ before: null, after: null, op: "t", source: { ts_ms: 1 } });

async function topicWith(partitions: number): Promise<string> {
  const topic = `offsets-${randomBytes(4).toString("hex")}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  await admin.disconnect();
  return topic;
}

async function committedOffset(groupId: string, topic: string, partition: number): Promise<string | undefined> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return offsets?.partitions.find((p) => p.partition === partition)?.offset;
  } finally {
    await admin.disconnect();
  }
}

describe("kafka-debezium: the state against the group's committed offsets", () => {
  let run: CdcRun | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await run?.stop({ keepState: true });
    run = undefined;
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("does not apply again what the state holds when the group's offsets fell behind it: a truncate read again removed what other partitions wrote since", async () => {
    const topic = await topicWith(2);
    const group = `g-${topic}`;
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ partition: 0, key: key(1), value: create(1, "one") }, { partition: 0, key: null, value: TRUNCATE }] });
    const stateDir = mkdtempSync(join(tmpdir(), "kafka-offsets-"));
    dirs.push(stateDir);
    run = startSource(validConfig(config(topic, group)), kafkaDebeziumSource, stateDir);
    const first = run;
    await waitFor("the truncate", async () => (first.store.position(`kafka:bus:${topic}:0`) === "1" ? true : undefined));
    // Written after the truncate, on the other partition.
    await producer.send({ topic, messages: [{ partition: 1, key: key(2), value: create(2, "two") }] });
    await waitFor("the user after it", async () => (first.store.position(`kafka:bus:${topic}:1`) === "0" ? true : undefined));
    expect([...first.store.recordsOf("users")].map((r) => r.id)).toEqual(["2"]);
    await first.stop({ keepState: true });
    await producer.disconnect();
    // A SIGKILL after partition 0's batch was durable but before its offsets were committed.
    const admin = kafka.admin();
    await admin.connect();
    await admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: "0" }] });
    await admin.disconnect();
    run = startSource(validConfig(config(topic, group)), kafkaDebeziumSource, stateDir);
    const second = run;
    // Every position the source hands on for partition 0 (it joins its group well after this).
    const emitted: string[] = [];
    const reader = second.connector as unknown as { emit(change: Change): void };
    const emit = reader.emit.bind(reader);
    reader.emit = (change) => {
      if (change.position.stream === `kafka:bus:${topic}:0`) emitted.push(change.position.position);
      emit(change);
    };
    await waitFor("partition 0 committed again", async () => ((await committedOffset(group, topic, 0)) === "2" ? true : undefined), 30_000);
    // Passed over at the state's position: the stored position never went back to 0 (a crash then
    // would have started the next run behind the state; before, each message carried its own offset).
    expect(emitted).toEqual(["1", "1"]);
    // Before, user 1 came back and the truncate then removed both: user 2, in no message read again, was lost.
    expect([...second.store.recordsOf("users")].map((r) => [r.id, r.values.name])).toEqual([["2", "two"]]);
    expect(second.store.position(`kafka:bus:${topic}:0`)).toBe("1");
    expect(second.store.sourceDeadLetters()).toEqual([]);
  });

  it("reads from their start the partitions the state holds nothing of, when the group has read past them (an empty --state on the group of an earlier one)", async () => {
    const topic = await topicWith(2);
    const group = `g-${topic}`;
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [1, 2, 3, 4].map((id) => ({ partition: id % 2, key: key(id), value: create(id, `n${id}`) })) });
    const firstDir = mkdtempSync(join(tmpdir(), "kafka-offsets-"));
    dirs.push(firstDir);
    run = startSource(validConfig(config(topic, group)), kafkaDebeziumSource, firstDir);
    const first = run;
    await waitFor("every user", async () => (first.store.countOf("records", "users") === 4 ? true : undefined));
    await waitFor("the offsets committed", async () => ((await committedOffset(group, topic, 0)) === "2" && (await committedOffset(group, topic, 1)) === "2" ? true : undefined), 30_000);
    await first.stop({ keepState: true });
    // The state is gone (a new volume, a wiped directory); the group's offsets are not.
    const emptyDir = mkdtempSync(join(tmpdir(), "kafka-offsets-"));
    dirs.push(emptyDir);
    run = startSource(validConfig(config(topic, group)), kafkaDebeziumSource, emptyDir);
    const second = run;
    await producer.send({ topic, messages: [{ partition: 1, key: key(5), value: create(5, "n5") }] });
    await producer.disconnect();
    await waitFor("partition 1 read", async () => (second.store.position(`kafka:bus:${topic}:1`) === "2" ? true : undefined), 30_000);
    await waitFor("partition 0 read", async () => (second.store.position(`kafka:bus:${topic}:0`) === "1" ? true : undefined), 30_000);
    // Before, it started where the group was: only user 5, written afterwards.
    expect([...second.store.recordsOf("users")].map((r) => [r.id, r.values.name]).sort()).toEqual([
      ["1", "n1"],
      ["2", "n2"],
      ["3", "n3"],
      ["4", "n4"],
      ["5", "n5"],
    ]);
  });
});
