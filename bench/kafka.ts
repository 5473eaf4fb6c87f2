// Benchmark: messages per second from a pre-filled topic into committed state (kafka-debezium
// source + pipeline + LMDB, one durable transaction per batch), against a bare kafkajs consumer
// reading the same topic in the same run, and a bare consumer that also JSON.parses each key and
// value (the least a consumer of Debezium's JSON envelopes does). Uses KAFKA_BROKERS, or starts a
// broker like the tests do.
import { cpus, totalmem } from "node:os";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { kafkaDebeziumSource } from "../connectors/kafka/debezium-source.js";
import { validateObjects } from "../daemon/config/validate.js";
import { compileDomain } from "../core/domain.js";
import { readIntoState } from "./common.js";
import { profiled, profiledReport } from "./profile.js";
import { startKafka } from "../test/services/kafka.js";
import { envelope, key } from "../test/fixtures/debezium.js";

const COUNT = Number(process.env.BENCH_MESSAGES ?? 200_000);
const PARTITIONS = 4;
const service = process.env.KAFKA_BROKERS ? undefined : await startKafka();
const brokers = process.env.KAFKA_BROKERS?.split(",") ?? service?.brokers ?? [];
const kafka = new Kafka({ clientId: "bench", brokers, logLevel: logLevel.NOTHING });
const topic = `bench-${Date.now()}`;

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
const producer = kafka.producer();
await producer.connect();
for (let i = 0; i < COUNT; i += 5000) {
  const messages = Array.from({ length: Math.min(5000, COUNT - i) }, (_, j) => {
    const id = (i + j) % 50_000;
    return { key: key(id, false), value: envelope("u", null, { id, first_name: `n${i + j}`, score: i + j }, 1, false) };
  });
  await producer.send({ topic, messages });
}
await producer.disconnect();

/**
 * A bare kafkajs consumer counting the messages; with `parse`, it also parses each key and value as
 * JSON, as any consumer of Debezium's JSON envelopes must (the least decoding a message needs).
 */
async function bare(parse = false): Promise<number> {
  const consumer = kafka.consumer({ groupId: `bare-${parse ? "parsed-" : ""}${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let fields = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachBatch: async ({ batch }) => {
        if (parse) {
          for (const m of batch.messages) {
            const k = JSON.parse(m.key?.toString("utf8") ?? "null") as object | null;
            const v = JSON.parse(m.value?.toString("utf8") ?? "null") as object | null;
            fields += (k ? 1 : 0) + (v ? 1 : 0);
          }
        }
        seen += batch.messages.length;
        if (seen >= COUNT) resolve();
      },
    });
  });
  if (parse && fields < 2 * COUNT) throw new Error(`parsed ${fields} keys and values of ${COUNT} messages`);
  const seconds = (performance.now() - started) / 1000;
  await consumer.disconnect();
  return seconds;
}

async function intoState(): Promise<number> {
  const result = validateObjects([
    { file: "bench", index: 0, value: { class: "app", id: "bus", type: "kafka", options: { brokers, groupId: `state-${topic}` } } },
    { file: "bench", index: 1, value: { class: "model", id: "customers" } },
    { file: "bench", index: 2, value: { class: "source", id: "t", type: "kafka-debezium", appId: "bus", modelId: "customers", options: { topic }, mapping: { id: "customer_id" } } },
    { file: "bench", index: 3, value: { class: "property", id: "customer_id", type: "integer", unique: true, sourceId: "t", options: { column: "id" } } },
    { file: "bench", index: 4, value: { class: "property", id: "first_name", type: "string", sourceId: "t", options: { column: "first_name" } } },
    { file: "bench", index: 5, value: { class: "property", id: "score", type: "integer", sourceId: "t", options: { column: "score" } } },
    { file: "bench", index: 6, value: { class: "group", id: "high", modelId: "customers", rules: [{ propertyId: "score", op: "gt", match: COUNT / 2 }] } },
  ]);
  if (!result.config) throw new Error(JSON.stringify(result.issues));
  const config = result.config;
  const app = config.apps[0];
  if (!app) throw new Error("no app");
  const source = kafkaDebeziumSource.create(app, config.sources, { logger: pino({ level: "silent" }), positions: new Map() });
  return profiled("kafka", () => readIntoState(source, compileDomain(config), COUNT));
}

const bareSeconds = await bare();
const parsedSeconds = await bare(true);
const stateSeconds = await intoState();
await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
await admin.disconnect();
await service?.stop();
const result = {
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  messages: COUNT,
  partitions: PARTITIONS,
  bareKafkajsPerSecond: Math.round(COUNT / bareSeconds),
  bareParsedPerSecond: Math.round(COUNT / parsedSeconds),
  intoStatePerSecond: Math.round(COUNT / stateSeconds),
  stateToBare: Number((bareSeconds / stateSeconds).toFixed(3)),
  parsedToBare: Number((bareSeconds / parsedSeconds).toFixed(3)),
  stateToParsed: Number((parsedSeconds / stateSeconds).toFixed(3)),
};
console.log(JSON.stringify(result));
console.log(
  `bare kafkajs consumer: ${result.bareKafkajsPerSecond.toLocaleString("en")} messages/s\n` +
    `bare kafkajs, each key and value JSON.parse'd: ${result.bareParsedPerSecond.toLocaleString("en")} messages/s (${(result.parsedToBare * 100).toFixed(1)} % of bare)\n` +
    `into committed state: ${result.intoStatePerSecond.toLocaleString("en")} messages/s (${(result.stateToBare * 100).toFixed(1)} % of bare, ${(result.stateToParsed * 100).toFixed(1)} % of bare with JSON.parse)`,
);
const report = profiledReport("the read into committed state", "kafka");
if (report) console.log(`\n${report}`);
