// A /regex/ kafka-debezium source against the real broker reads topics made after it started; so does
// a source naming a topic not made yet, which the consumer no longer makes itself.
// Debezium makes a table's topic when the table first changes (or when a table is added to its
// include list); kafkajs matches a regular expression only against the topics there are when it
// subscribes, so before 2026-12-03 such a topic was never read until the daemon started again.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { kafkaDebeziumSource, TOPIC_WATCH } from "../../connectors/kafka/debezium-source.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

type Obj = Record<string, unknown>;
const kafka = new Kafka({ clientId: "kafka-regex-topics-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });

const config = (topic: string, groupId: string, more: Obj[] = []): Obj[] => [
  { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers(), groupId } },
  { class: "model", id: "users" },
  { class: "source", id: "users_topics", type: "kafka-debezium", appId: "bus", modelId: "users", options: { topic }, mapping: { id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_topics", options: { column: "id" } },
  { class: "property", id: "name", type: "string", sourceId: "users_topics", options: { column: "name" } },
  ...more,
];
const key = (id: number) => JSON.stringify({ id });
const create = (id: number, name: string) => JSON.stringify({ before: null, after: { id, name }, op: "c", source: { ts_ms: 1 } });

describe("kafka-debezium /regex/ topics", () => {
  let run: CdcRun | undefined;
  const interval = TOPIC_WATCH.intervalMs;
  afterEach(async () => {
    TOPIC_WATCH.intervalMs = interval;
    await run?.stop();
    run = undefined;
  });

  it("reads a topic that matches once it is made, from its start, while the others go on", async () => {
    TOPIC_WATCH.intervalMs = 500;
    const prefix = `shard-${randomBytes(3).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: `${prefix}.a` }], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: `${prefix}.a`, messages: [{ key: key(1), value: create(1, "one") }] });
    run = startSource(validConfig(config(`/^${prefix}\\..*$/`, `g-${prefix}`)), kafkaDebeziumSource);
    const current = run;
    await waitFor("the first topic", async () => (current.store.countOf("records", "users") === 1 ? true : undefined));
    // Made (as Debezium makes it) and written to after the source started.
    await admin.createTopics({ topics: [{ topic: `${prefix}.b`, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    await producer.send({ topic: `${prefix}.b`, messages: [{ partition: 0, key: key(2), value: create(2, "two") }, { partition: 1, key: key(3), value: create(3, "three") }] });
    await producer.send({ topic: `${prefix}.a`, messages: [{ key: key(4), value: create(4, "four") }] });
    await producer.disconnect();
    await waitFor("the new topic", async () => (current.store.countOf("records", "users") === 4 ? true : undefined), 20_000);
    expect([...current.store.recordsOf("users")].map((r) => [r.id, r.values.name]).sort()).toEqual([
      ["1", "one"],
      ["2", "two"],
      ["3", "three"],
      ["4", "four"],
    ]);
    expect(current.store.position(`kafka:bus:${prefix}.a:0`)).toBe("1");
    expect(current.store.sourceDeadLetters()).toEqual([]);
  });

  it("reads a named topic not made yet once it is made, without making it itself, while the app's other topics are read", async () => {
    // Before 2026-12-03 kafkajs's consumer asked the broker to make a missing topic (broker defaults:
    // one partition, the delete policy), which took the place of the compacted, partitioned topic
    // Debezium's topic.creation settings would have made.
    TOPIC_WATCH.intervalMs = 500;
    const prefix = `named-${randomBytes(3).toString("hex")}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: `${prefix}.users` }], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: `${prefix}.users`, messages: [{ key: key(1), value: create(1, "one") }] });
    const later = [
      { class: "source", id: "vips_topic", type: "kafka-debezium", appId: "bus", modelId: "users", options: { topic: `${prefix}.vips` }, mapping: { id: "user_id" } },
      { class: "property", id: "tier", type: "string", sourceId: "vips_topic", options: { column: "tier" } },
    ];
    run = startSource(validConfig(config(`${prefix}.users`, `g-${prefix}`, later)), kafkaDebeziumSource);
    const current = run;
    await waitFor("the topic there is", async () => (current.store.countOf("records", "users") === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await admin.listTopics()).filter((t) => t.startsWith(prefix)).sort()).toEqual([`${prefix}.users`]);
    // Made as Debezium's topic.creation would make it, then written to (user 3's row waits for its record).
    await admin.createTopics({ topics: [{ topic: `${prefix}.vips`, numPartitions: 3, configEntries: [{ name: "cleanup.policy", value: "compact" }] }], waitForLeaders: true });
    await producer.send({ topic: `${prefix}.vips`, messages: [0, 1, 2].map((partition) => ({ partition, key: key(1 + partition), value: JSON.stringify({ before: null, after: { id: 1 + partition, tier: `t${partition}` }, op: "c", source: { ts_ms: 1 } }) })) });
    await producer.send({ topic: `${prefix}.users`, messages: [{ key: key(2), value: create(2, "two") }] });
    await producer.disconnect();
    await waitFor("the named topic once made", async () => ([...current.store.recordsOf("users")].filter((r) => typeof r.values.tier === "string").length === 2 && current.store.countOf("records", "users") === 2 ? true : undefined), 20_000);
    expect([...current.store.recordsOf("users")].map((r) => [r.id, r.values.name, r.values.tier]).sort()).toEqual([
      ["1", "one", "t0"],
      ["2", "two", "t1"],
    ]);
    const metadata = await admin.fetchTopicMetadata({ topics: [`${prefix}.vips`] });
    expect(metadata.topics[0]?.partitions.length).toBe(3);
    await admin.disconnect();
    expect(current.store.sourceDeadLetters()).toEqual([]);
  });
});
