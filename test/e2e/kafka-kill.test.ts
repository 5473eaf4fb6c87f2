// The daemon reading Debezium events from Kafka, killed with SIGKILL at random instants while a
// producer writes, restarted each time: no change is lost and the final state is exact.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { Store } from "../../state/store.js";
import { envelope, key } from "../fixtures/debezium.js";
import { freePort } from "../services/process.js";
import { get, startDaemon, waitFor } from "../helpers/daemon.js";
import { testKafkaBrokers } from "../services/use.js";

const KILLS = 10;
const KEYS = 150;

describe("kafka-debezium under SIGKILL", () => {
  const work = mkdtempSync(join(tmpdir(), "kafka-kill-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(`loses nothing across ${KILLS} kills while a producer writes`, { timeout: 240_000 }, async () => {
    const brokers = testKafkaBrokers();
    const topic = `kill-${randomBytes(4).toString("hex")}`;
    const kafka = new Kafka({ clientId: "kill-test", brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    writeFileSync(
      join(work, "config.yml"),
      `
- { class: app, id: bus, type: kafka, options: { brokers: ${JSON.stringify(brokers)}, groupId: g-${topic}, sessionTimeoutMs: 2000 } }
- { class: model, id: customers }
- { class: source, id: customers_topic, type: kafka-debezium, appId: bus, modelId: customers, options: { topic: ${topic} }, mapping: { id: customer_id } }
- { class: property, id: customer_id, type: integer, unique: true, sourceId: customers_topic, options: { column: id } }
- { class: property, id: score, type: integer, sourceId: customers_topic, options: { column: score } }
`,
    );

    // The producer: every write's final effect is known, per key (last write wins, deletes remove).
    const expected = new Map<number, number>();
    const producer = kafka.producer();
    await producer.connect();
    let producing = true;
    let sequence = 0;
    const writer = (async () => {
      while (producing) {
        const messages = Array.from({ length: 25 }, () => {
          sequence += 1;
          const id = 1 + ((sequence * 7919) % KEYS);
          if (sequence % 9 === 0 && expected.has(id)) {
            expected.delete(id);
            return { key: key(id, false), value: envelope("d", { id }, null, sequence, false) };
          }
          expected.set(id, sequence);
          return { key: key(id, false), value: envelope(expected.has(id) ? "u" : "c", null, { id, score: sequence }, sequence, false) };
        });
        await producer.send({ topic, acks: -1, messages });
        await new Promise((r) => setTimeout(r, 15));
      }
    })();

    const state = join(work, "state");
    let random = 7;
    for (let kill = 0; kill < KILLS; kill += 1) {
      const http = `127.0.0.1:${await freePort()}`;
      const daemon = startDaemon(["--config", join(work, "config.yml"), "--state", state], http);
      await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      random = (random * 1103515245 + 12345) % 2147483648;
      await new Promise((r) => setTimeout(r, 200 + (random % 600)));
      daemon.child.kill("SIGKILL");
      expect((await daemon.exited).signal).toBe("SIGKILL");
    }
    producing = false;
    await writer;
    await producer.disconnect();

    const http = `127.0.0.1:${await freePort()}`;
    const daemon = startDaemon(["--config", join(work, "config.yml"), "--state", state], http);
    // Ready first: the offsets may all be committed already by the runs before, and a SIGTERM while the
    // program loads (before its handlers exist) ends it by the signal's default action, not with exit 0.
    await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
    const ends = await admin.fetchTopicOffsets(topic);
    await waitFor(
      "every offset committed",
      async () => {
        const [offsets] = await admin.fetchOffsets({ groupId: `g-${topic}`, topics: [topic] });
        return ends.every((end) => offsets?.partitions.find((p) => p.partition === end.partition)?.offset === end.high) ? true : undefined;
      },
      60_000,
    );
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    await admin.disconnect();

    const store = Store.open(state);
    try {
      const actual = new Map([...store.recordsOf("customers")].map((r) => [Number(r.id), r.values.score]));
      expect(actual).toEqual(expected);
      expect(sequence).toBeGreaterThan(500);
    } finally {
      await store.close();
    }
  });
});
