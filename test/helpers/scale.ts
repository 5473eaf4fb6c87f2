// Relay and workers in tests (README, "Relay and workers"): the shop schema with a partitioned users
// model (the relay routes users by id and purchases by user_id), a CRM table as destination, and the
// oracle: one daemon on the same config without `partitioned`, reading the same tables through its own
// slot into its own table.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { NODE_FLAGS } from "../../daemon/node-flags.js";
import { CLI, reap } from "./cli.js";
import type { Obj } from "./converge.js";

export interface ScaleNames {
  topic: string;
  groupId: string;
  slot: string;
  table: string;
}

export function scaleNames(prefix: string): ScaleNames {
  const tag = randomBytes(4).toString("hex");
  return { topic: `${prefix}-${tag}`, groupId: `${prefix}-workers-${tag}`, slot: `${prefix}_${tag}`, table: "crm" };
}

export const SCALE_SCHEMA = [
  `CREATE TABLE users (id int PRIMARY KEY, email text, name text, vip boolean, seen_at timestamptz, tags text[])`,
  `CREATE TABLE purchases (id int PRIMARY KEY, user_id int, amount numeric, state text, created_at timestamptz)`,
  `CREATE TABLE crm (id int PRIMARY KEY, email text, name text, ltv float8, purchases int, last_purchase timestamptz, segments text[])`,
  `CREATE TABLE crm_oracle (id int PRIMARY KEY, email text, name text, ltv float8, purchases int, last_purchase timestamptz, segments text[])`,
];

/** The shop config; `partitioned` adds the kafka app and makes the users model partitioned. */
export function scaleConfig(dbUrl: string, brokers: readonly string[], names: ScaleNames, options: { partitioned: boolean; partitions?: number; table?: string; slot?: string }): Obj[] {
  return [
    { class: "app", id: "shop", type: "postgres", options: { connectionString: dbUrl, slot: options.slot ?? names.slot, publication: names.slot } },
    { class: "app", id: "bus", type: "kafka", options: { brokers: [...brokers], groupId: names.groupId, sessionTimeoutMs: 6000 } },
    options.partitioned ? { class: "model", id: "users", partitioned: { appId: "bus", topic: names.topic, partitions: options.partitions ?? 6 } } : { class: "model", id: "users" },
    { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
    { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "purchases" }, mapping: { user_id: "user_id" } },
    { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
    { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
    { class: "property", id: "name", type: "string", sourceId: "users_table", options: { column: "name" } },
    { class: "property", id: "vip", type: "boolean", sourceId: "users_table", options: { column: "vip" } },
    { class: "property", id: "seen_at", type: "date", sourceId: "users_table", options: { column: "seen_at" } },
    { class: "property", id: "tags", type: "string", isArray: true, sourceId: "users_table", options: { column: "tags" } },
    { class: "property", id: "purchase_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
    { class: "property", id: "lifetime_value", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "sum" }, filters: [{ key: "state", op: "eq", match: "successful" }] },
    { class: "property", id: "last_purchase_at", type: "date", sourceId: "purchases_table", options: { column: "created_at", aggregationMethod: "max" } },
    { class: "group", id: "high_value", modelId: "users", rules: [{ propertyId: "lifetime_value", op: "gte", match: 150 }] },
    { class: "group", id: "vips", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] },
    { class: "group", id: "recent", modelId: "users", rules: [{ propertyId: "seen_at", op: "relative_gt", relativeMatchNumber: 2, relativeMatchUnit: "days" }] },
    {
      class: "destination",
      id: "crm",
      type: "postgres-table",
      appId: "shop",
      modelId: "users",
      collection: "model",
      syncMode: "sync",
      options: { table: options.table ?? names.table, primaryKey: "id", groupsColumn: "segments" },
      mapping: { id: "user_id", email: "email", name: "name", ltv: "lifetime_value", purchases: "purchase_count", last_purchase: "last_purchase_at" },
      destinationGroupMemberships: { "High Value": "high_value", VIP: "vips", Recent: "recent" },
    },
  ];
}

/** Deterministic writes of one round: inserts, updates, purchases moved between users, deletes. */
export function scaleWrites(round: number, users: number): string[] {
  const base = round * 1000;
  const u = (i: number) => 1 + ((round * 37 + i * 13) % users);
  return [
    `INSERT INTO users (id, email, name, vip, seen_at, tags) SELECT g, 'u' || g || '@Example.com', 'name' || g, g % 3 = 0, now() - (g % 5) * interval '1 day', ARRAY['t' || (g % 4), 'x'] FROM generate_series(${u(0)}, ${u(0) + 20}) g ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name || '${round}', vip = NOT users.vip`,
    `INSERT INTO purchases SELECT ${base} + g, 1 + (g * 7 + ${round}) % ${users + 5}, (g * 13) % 97 + 0.5, CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'successful' END, '2026-01-01T00:00:00Z'::timestamptz + (${round} * 40 + g) * interval '1 hour' FROM generate_series(1, 30) g`,
    `UPDATE purchases SET user_id = user_id % ${users} + 1 WHERE id % 7 = ${round % 7} AND id < ${base}`,
    `UPDATE purchases SET amount = amount + 1, state = 'successful' WHERE id % 11 = ${round % 11}`,
    `DELETE FROM purchases WHERE id % 13 = ${round % 13} AND id < ${base}`,
    `UPDATE users SET email = NULL, seen_at = now() WHERE id = ${u(3)}`,
    `DELETE FROM users WHERE id = ${u(5)}`,
  ];
}

/** The scale config with a jsonl-file destination beside the CRM table, written under ${EXPORT_DIR}. */
export function withExportFile(objects: Obj[]): Obj[] {
  return [
    ...objects,
    { class: "app", id: "files", type: "file", options: { directory: "${EXPORT_DIR}" } },
    { class: "destination", id: "ledger", type: "jsonl-file", appId: "files", modelId: "users", collection: "model", syncMode: "sync", options: { path: "exports.jsonl" }, mapping: { id: "user_id", ltv: "lifetime_value", name: "name" }, destinationGroupMemberships: { Recent: "recent", VIP: "vips" } },
  ];
}

export interface ModeProcess {
  child: ChildProcess;
  http: string;
  logs: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `grouparoo-stream relay|worker|run ...` as a process, the way an SRE starts it. */
export function startMode(command: "relay" | "worker" | "run", args: string[], http: string, env: NodeJS.ProcessEnv = process.env): ModeProcess {
  const child = reap(spawn(process.execPath, [...NODE_FLAGS, CLI, command, ...args, "--http", http], { env, stdio: ["ignore", "pipe", "pipe"] }));
  let logs = "";
  child.stdout?.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return { child, http, logs: () => logs, exited };
}
