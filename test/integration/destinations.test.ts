// Every sync mode against every built-in destination (real Postgres, real Kafka, a real local HTTP
// server, a real file): records entering and leaving the tracked group and deleted at the source,
// delivered from the durable outbox, and the remote state after each step exactly as the mode says.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { jsonlFileDestination } from "../../connectors/file/jsonl.js";
import { kafkaTopicDestination } from "../../connectors/kafka/topic.js";
import { postgresTableDestination } from "../../connectors/postgres/table.js";
import type { DestinationConnector, DestinationComponent } from "../../connectors/types.js";
import { webhookDestination } from "../../connectors/webhook/webhook.js";
import { Store, type OutboxEntry } from "../../state/store.js";
import { compileDomain } from "../../core/domain.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery } from "../../streams/delivery.js";
import { change } from "../helpers/core.js";
import { validConfig } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { startReceiver, type Receiver, type RemoteRecord } from "../helpers/remote.js";
import { applyBatch } from "../../streams/batch.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

type Obj = Record<string, unknown>;
type Remote = Record<string, RemoteRecord>;
type Mode = "sync" | "additive" | "enrich";
const SECRET = "a-webhook-secret";
const PRESET: Remote = { "1": { properties: { id: 1, email: "old@example.net" }, groups: [] } };

/** Folds exports the way an idempotent destination applies them. */
function fold(initial: Remote, exports: { recordId: string; toDelete: boolean; updateOnly: boolean; newRecordProperties: Obj; newGroups: string[] }[]): Remote {
  const state = new Map(Object.entries(initial));
  for (const e of exports) {
    if (e.toDelete) state.delete(e.recordId);
    else if (!e.updateOnly || state.has(e.recordId)) state.set(e.recordId, { properties: e.newRecordProperties, groups: e.newGroups });
  }
  return Object.fromEntries(state);
}

const steps: { name: string; changes: () => ReturnType<typeof change>[]; expected: Record<Mode, Remote> }[] = [
  {
    name: "three users, two in the tracked group",
    changes: () => [
      change("users_table", "insert", "1", { id: 1, email: "a@example.com", vip: true }),
      change("users_table", "insert", "2", { id: 2, email: "b@example.com", vip: true }),
      change("users_table", "insert", "3", { id: 3, email: "c@other.org", vip: false }),
    ],
    expected: {
      sync: {
        "1": { properties: { id: 1, email: "a@example.com" }, groups: ["Example", "VIP"] },
        "2": { properties: { id: 2, email: "b@example.com" }, groups: ["Example", "VIP"] },
      },
      additive: {
        "1": { properties: { id: 1, email: "a@example.com" }, groups: ["Example", "VIP"] },
        "2": { properties: { id: 2, email: "b@example.com" }, groups: ["Example", "VIP"] },
      },
      enrich: { "1": { properties: { id: 1, email: "a@example.com" }, groups: ["Example", "VIP"] } },
    },
  },
  {
    name: "a mapped property changes",
    // An update carries every column; vip, not sent (an unchanged TOAST value), keeps its value.
    changes: () => [change("users_table", "update", "1", { id: 1, email: "a2@other.org", vip: undefined })],
    expected: {
      sync: {
        "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] },
        "2": { properties: { id: 2, email: "b@example.com" }, groups: ["Example", "VIP"] },
      },
      additive: {
        "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] },
        "2": { properties: { id: 2, email: "b@example.com" }, groups: ["Example", "VIP"] },
      },
      enrich: { "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] } },
    },
  },
  {
    name: "a record leaves the tracked group",
    changes: () => [change("users_table", "update", "2", { id: 2, email: "b@example.com", vip: false })],
    expected: {
      sync: { "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] } },
      additive: {
        "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] },
        "2": { properties: { id: 2, email: "b@example.com" }, groups: [] },
      },
      enrich: { "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] } },
    },
  },
  {
    name: "a record is deleted at the source",
    changes: () => [change("users_table", "delete", "1", null)],
    expected: {
      sync: {},
      additive: {
        "1": { properties: { id: 1, email: "a2@other.org" }, groups: [] },
        "2": { properties: { id: 2, email: "b@example.com" }, groups: [] },
      },
      enrich: { "1": { properties: { id: 1, email: "a2@other.org" }, groups: ["VIP"] } },
    },
  },
];

describe("destinations and sync modes", () => {
  let db: TestDatabase;
  let receiver: Receiver;
  const work = mkdtempSync(join(tmpdir(), "destinations-"));
  const kafka = new Kafka({ clientId: "destinations-test", brokers: testKafkaBrokers(), logLevel: logLevel.NOTHING });
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "destinations");
    receiver = await startReceiver(SECRET);
  });
  afterAll(async () => {
    await receiver.close();
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  interface Target {
    plugin: DestinationComponent;
    appId: string;
    options: (id: string) => Promise<Obj>;
    /** Makes record 1 exist remotely (enrich only updates what exists). */
    preset: (id: string) => Promise<void>;
    read: (id: string, options: Obj) => Promise<Remote>;
  }

  const targets: Record<string, Target> = {
    "postgres-table": {
      plugin: postgresTableDestination,
      appId: "db",
      options: async (id) => {
        await db.query(`CREATE TABLE contacts_${id} (id int PRIMARY KEY, email text, groups text[] NOT NULL DEFAULT '{}')`);
        return { table: `contacts_${id}`, primaryKey: "id", groupsColumn: "groups" };
      },
      preset: async (id) => void (await db.query(`INSERT INTO contacts_${id} VALUES (1, 'old@example.net', '{}')`)),
      read: async (id) => {
        const { rows } = await db.query<{ id: number; email: string; groups: string[] }>(`SELECT id, email, groups FROM contacts_${id} ORDER BY id`);
        return Object.fromEntries(rows.map((r) => [String(r.id), { properties: { id: r.id, email: r.email }, groups: r.groups }]));
      },
    },
    webhook: {
      plugin: webhookDestination,
      appId: "hooks",
      options: async () => ({ batchSize: 50 }),
      preset: async () => void receiver.records.set("1", structuredClone(PRESET["1"] as RemoteRecord)),
      read: async () => Object.fromEntries([...receiver.records].sort(([a], [b]) => a.localeCompare(b))),
    },
    "kafka-topic": {
      plugin: kafkaTopicDestination,
      appId: "bus",
      options: async (id) => {
        const admin = kafka.admin();
        await admin.connect();
        await admin.createTopics({ topics: [{ topic: `contacts-${id}` }], waitForLeaders: true });
        await admin.disconnect();
        return { topic: `contacts-${id}` };
      },
      preset: async () => undefined,
      read: async (id, options) => {
        const admin = kafka.admin();
        await admin.connect();
        const [end] = await admin.fetchTopicOffsets(String(options.topic));
        await admin.disconnect();
        const consumer = kafka.consumer({ groupId: `read-${id}-${randomBytes(3).toString("hex")}` });
        await consumer.connect();
        await consumer.subscribe({ topic: String(options.topic), fromBeginning: true });
        const exports: Parameters<typeof fold>[1] = [];
        await new Promise<void>((resolve) => {
          if (end?.high === "0") resolve();
          void consumer.run({
            eachMessage: async ({ message }) => {
              const recordId = message.key?.toString() ?? "";
              exports.push(message.value ? (JSON.parse(message.value.toString()) as Parameters<typeof fold>[1][number]) : { recordId, toDelete: true, updateOnly: false, newRecordProperties: {}, newGroups: [] });
              if (BigInt(message.offset) + 1n === BigInt(end?.high ?? "0")) resolve();
            },
          });
        });
        await consumer.disconnect();
        return fold(mode === "enrich" ? PRESET : {}, exports);
      },
    },
    "jsonl-file": {
      plugin: jsonlFileDestination,
      appId: "files",
      options: async (id) => ({ path: `exports-${id}.jsonl` }),
      preset: async () => undefined,
      read: async (id) => {
        const file = join(work, `exports-${id}.jsonl`);
        const lines = existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter((l) => l) : [];
        return fold(mode === "enrich" ? PRESET : {}, lines.map((l) => JSON.parse(l) as Parameters<typeof fold>[1][number]));
      },
    },
  };
  let mode: Mode = "sync";

  for (const [type, target] of Object.entries(targets)) {
    for (const syncMode of ["sync", "additive", "enrich"] as const) {
      it(`${type} in ${syncMode} mode`, { timeout: 60_000 }, async () => {
        mode = syncMode;
        receiver.records.clear();
        const id = randomBytes(4).toString("hex");
        const options = await target.options(id);
        const config = validConfig([
          { class: "app", id: "db", type: "postgres", options: { connectionString: db.url } },
          { class: "app", id: "hooks", type: "webhook", options: { url: receiver.url, secret: SECRET } },
          { class: "app", id: "bus", type: "kafka", options: { brokers: testKafkaBrokers() } },
          { class: "app", id: "files", type: "file", options: { directory: work } },
          { class: "model", id: "users" },
          { class: "source", id: "users_table", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
          { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
          { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
          { class: "property", id: "vip", type: "boolean", sourceId: "users_table", options: { column: "vip" } },
          { class: "group", id: "vips", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] },
          { class: "group", id: "example", modelId: "users", rules: [{ propertyId: "email", op: "like", match: "%@example.com" }] },
          {
            class: "destination",
            id: "d",
            type,
            appId: target.appId,
            modelId: "users",
            collection: "group",
            groupId: "vips",
            syncMode,
            options,
            mapping: { id: "user_id", email: "email" },
            destinationGroupMemberships: { VIP: "vips", Example: "example" },
          },
        ]);
        if (syncMode === "enrich") await target.preset(id);
        const domain = compileDomain(config);
        const dir = mkdtempSync(join(tmpdir(), "destination-state-"));
        const store = Store.open(dir);
        const destination = config.destinations[0];
        const app = config.apps.find((a) => a.id === target.appId);
        if (!destination || !app) throw new Error("config");
        const connector: DestinationConnector = target.plugin.create(destination, app, { logger: pino({ level: "silent" }), fieldTypes: { id: "integer", email: "email" } });
        const delivery = new Delivery<OutboxEntry>(
          connector,
          store.outboxFor("d"),
          { completed: () => undefined, failed: () => undefined },
          { ...DEFAULT_DELIVERY_OPTIONS, baseBackoffMs: 20 },
        );
        delivery.start();
        try {
          for (const step of steps) {
            await applyBatch(store, domain, step.changes(), Date.now());
            delivery.wake();
            await waitFor(`${step.name} delivered`, async () => (store.outboxDepth("d") === 0 && delivery.idle() ? true : undefined));
            expect({ step: step.name, remote: await target.read(id, options) }).toEqual({ step: step.name, remote: step.expected[syncMode] });
          }
          expect(store.exportDeadLetters()).toEqual([]);
        } finally {
          await delivery.stop();
          await connector.stop();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        }
        if (type === "webhook") expect(receiver.requests.every((r) => r.signed && /^[0-9a-f]{64}$/.test(r.idempotencyKey))).toBe(true);
      });
    }
  }
});
