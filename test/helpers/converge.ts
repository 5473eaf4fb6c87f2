// The convergence oracle for config changes: a daemon runs config A on real Postgres, its source takes
// writes, the config changes to B (by a restart or a reload), the source takes more writes while B's
// Runs go on, and once everything has settled, the state and the destination table are compared with
// those of a fresh daemon (empty state, new slot) running B over the same final data. The daemons run
// in-process (daemon/daemon.ts, the same code `run` runs), with their HTTP on free loopback ports.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Daemon } from "../../daemon/daemon.js";
import type { Store } from "../../state/store.js";
import { RUN_HOOKS, type RunState } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { waitFor } from "./daemon.js";
import type { TestDatabase } from "./postgres.js";

export type Obj = Record<string, unknown>;

/** The shop schema every scenario starts from: users, purchases, refunds, and two CRM tables. */
export const SHOP_SCHEMA = [
  `CREATE TABLE users (id int PRIMARY KEY, email text, name text, last_name text, vip boolean, created_at timestamptz DEFAULT '2026-01-01T00:00:00Z')`,
  `CREATE TABLE purchases (id int PRIMARY KEY, user_id int, amount numeric, discount numeric, state text, sku text, created_at timestamptz)`,
  `CREATE TABLE refunds (id int PRIMARY KEY, user_id int, amount numeric)`,
  `CREATE TABLE crm (id int PRIMARY KEY, email text, name text, ltv float8, purchases int, segments text[])`,
  `CREATE TABLE crm_oracle (id int PRIMARY KEY, email text, name text, ltv float8, purchases int, segments text[])`,
];

/** Rows the source starts with: 12 users, 40 purchases across them, some refunds. */
export const SHOP_DATA = [
  `INSERT INTO users (id, email, name, last_name, vip) SELECT g, 'u' || g || '@example.com', 'name' || g, 'last' || g, g % 3 = 0 FROM generate_series(1, 12) g`,
  `INSERT INTO purchases SELECT g, 1 + g % 10, (g * 7) % 100 + 1, g % 5, CASE WHEN g % 4 = 0 THEN 'failed' WHEN g % 4 = 1 THEN 'refunded' ELSE 'successful' END, 'sku' || (g % 6), '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 hour' FROM generate_series(1, 40) g`,
  `INSERT INTO refunds SELECT g, 1 + g % 7, g * 3 FROM generate_series(1, 9) g`,
];

/** More writes, as a source takes them while a daemon runs: inserts, updates, deletes of old rows. */
export function shopWrites(round: number): string[] {
  const base = 100 * round;
  return [
    `INSERT INTO users (id, email, name, last_name, vip) VALUES (${base + 1}, 'new${base}@example.com', 'new${base}', 'newlast${base}', true)`,
    `INSERT INTO purchases SELECT ${base} + g, 1 + (g * 3) % 12, g * 11 % 90 + 5, g % 3, CASE WHEN g % 3 = 0 THEN 'failed' ELSE 'successful' END, 'sku' || (g % 4), '2026-02-01T00:00:00Z'::timestamptz + (${round} * 50 + g) * interval '1 hour' FROM generate_series(1, 8) g`,
    `INSERT INTO purchases VALUES (${base + 50}, ${base + 1}, 42, 0, 'successful', 'skuX', '2026-03-01T00:00:00Z')`,
    `UPDATE purchases SET amount = amount + 1, state = 'successful' WHERE id IN (${round + 1}, ${round + 5})`,
    `DELETE FROM purchases WHERE id IN (${round + 2}, ${round + 9})`,
    `UPDATE users SET name = 'renamed${round}', vip = NOT vip WHERE id IN (${round + 2}, ${round + 3})`,
    `DELETE FROM users WHERE id = ${12 - round}`,
    `INSERT INTO refunds VALUES (${base + 1}, ${1 + round}, 5) ON CONFLICT DO NOTHING`,
    `DELETE FROM refunds WHERE id = ${round + 1}`,
  ];
}

/** The shop config: users (primary), purchases aggregated, a group, and the CRM table as destination. */
export function shopConfig(): Obj[] {
  return [
    { class: "app", id: "shop", type: "postgres", options: {} },
    { class: "model", id: "users" },
    { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
    { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "purchases" }, mapping: { user_id: "user_id" } },
    { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
    { class: "property", id: "email", type: "email", unique: true, sourceId: "users_table", options: { column: "email" } },
    { class: "property", id: "name", type: "string", sourceId: "users_table", options: { column: "name" } },
    { class: "property", id: "vip", type: "boolean", sourceId: "users_table", options: { column: "vip" } },
    { class: "property", id: "purchase_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
    {
      class: "property",
      id: "lifetime_value",
      type: "float",
      sourceId: "purchases_table",
      options: { column: "amount", aggregationMethod: "sum" },
      filters: [{ key: "state", op: "eq", match: "successful" }],
    },
    { class: "property", id: "max_amount", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "max" } },
    { class: "group", id: "high_value", modelId: "users", rules: [{ propertyId: "lifetime_value", op: "gte", match: 150 }] },
    { class: "group", id: "vips", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] },
    {
      class: "destination",
      id: "crm",
      type: "postgres-table",
      appId: "shop",
      modelId: "users",
      collection: "model",
      syncMode: "sync",
      options: { table: "crm", primaryKey: "id", groupsColumn: "segments" },
      mapping: { id: "user_id", email: "email", name: "name", ltv: "lifetime_value", purchases: "purchase_count" },
      destinationGroupMemberships: { "High Value": "high_value", VIP: "vips" },
    },
  ];
}

/** Shop objects made concrete for a run as a process: the app's connection, slot and publication, the destination's table. */
export const concreteShop = (objects: Obj[], url: string, slot: string, table: string): Obj[] =>
  objects.map((o) =>
    o.class === "app" ? { ...o, options: { connectionString: url, slot, publication: slot } } : o.class === "destination" ? { ...o, options: { ...(o.options as Obj), table } } : o,
  );

export const find = (objects: Obj[], id: string, cls?: string): Obj => {
  const found = objects.find((o) => o.id === id && (cls === undefined || o.class === cls));
  if (!found) throw new Error(`no ${cls ?? "object"} ${id}`);
  return found;
};

/** A config with the connection, slot and destination table of one daemon. */
export function concrete(objects: Obj[], url: string, slot: string, table: string): Obj[] {
  // A postgres app other than the shop's (on the same database): a slot and publication of its own.
  return objects.map((o) => {
    const own = o.id === "shop" ? slot : `${slot}_${String(o.id)}`;
    if (o.class === "app" && o.type === "postgres") return { ...o, options: { ...(o.options as Obj), connectionString: url, slot: own, publication: own } };
    if (o.class === "destination" && o.type === "postgres-table") return { ...o, options: { ...(o.options as Obj), table } };
    return o;
  });
}

export interface ConvergenceScenario {
  /** The configs in order: the daemon starts on the first and changes to each next one. */
  configs: Obj[][];
  /** Writes after each config is running (the same count as configs; the last ones while its Runs go on). */
  writes?: (step: number) => string[];
  /**
   * How the oracle's destination table starts. Empty for sync (it creates what is missing and deletes
   * what it knows is gone). For additive and enrich, which keep what they find, a copy of the
   * scenario's final table: the oracle must then find nothing to change (a fixed point).
   */
  oracleSeed?: "empty" | "copy";
  /** Extra SQL before the daemons start. */
  setup?: string[];
  /** Columns of the destination table no longer mapped: the destination keeps what they held (compared apart). */
  unmapped?: string[];
  /** Waits, after each start or config change and for the fresh daemon, for what `settle` does not see (polling runs). */
  settled?: (running: Running, config: Obj[]) => Promise<void>;
  /** Each config's writes go in before the change to it (none after the first config), not after it. */
  writesBeforeChange?: boolean;
}

export interface Running {
  daemon: Daemon;
  state: string;
  destinations: string[];
}

let sentinel = 900_000;

const destinationsOf = (config: Obj[]) => config.filter((o) => o.class === "destination").map((o) => String(o.id));

/** A user row whose arrival in each state (and delivery) means everything written before it is applied. */
export async function settle(db: TestDatabase, daemons: readonly Running[], label: string): Promise<void> {
  sentinel += 1;
  const id = sentinel;
  await db.query(`INSERT INTO users (id, email, name) VALUES ($1, $2, 'sentinel')`, [id, `sentinel${id}@example.com`]);
  for (const running of daemons) {
    const store = running.daemon.state;
    await waitFor(`${label}: sentinel ${id} applied, Runs done, outbox delivered`, async () => {
      if (!store.getRecord("users", String(id))) return undefined;
      if ((running.daemon.runs?.pending().length ?? 1) > 0) return undefined;
      for (const d of running.destinations) if (store.outboxDepth(d) > 0) return undefined;
      return true;
    }, 60_000);
  }
}

/** A daemon in-process on `config` (written to `file`), with its HTTP on a free loopback port. */
export async function start(file: string, config: Obj[], state: string, options: { outboxBound?: number } = {}): Promise<Running> {
  writeFileSync(file, JSON.stringify(config, null, 1));
  const daemon = await Daemon.start({ config: file, state, http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2, ...options }, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
  if (typeof daemon === "number") throw new Error(`the daemon did not start (exit ${daemon})`);
  return { daemon, state, destinations: destinationsOf(config) };
}

/** What the state holds that a fresh daemon must hold too (internal bookkeeping such as aggregate states aside). */
export function dumpState(store: Store, models: readonly string[], destinations: readonly string[], groups: readonly string[], sources: readonly string[]): Obj {
  const records: Obj = {};
  for (const model of models) {
    for (const r of store.recordsOf(model)) {
      const values = Object.fromEntries(Object.entries(r.values).sort(([a], [b]) => (a < b ? -1 : 1)));
      const invalid = Object.fromEntries(Object.entries(r.invalid).sort(([a], [b]) => (a < b ? -1 : 1)));
      records[`${model}/${r.id}`] = { values, invalid, groups: [...r.groups].sort() };
    }
  }
  const members = Object.fromEntries(models.flatMap((m) => groups.map((g) => [`${m}/${g}`, store.membersOf(m, g).sort()])));
  const counts = Object.fromEntries([...models.map((m) => [`records/${m}`, store.countOf("records", m)]), ...groups.map((g) => [`members/${g}`, store.countOf("members", g)])]);
  const rows = Object.fromEntries(sources.map((s) => [s, Object.fromEntries([...store.rowsOf(s)].map(([k, row]) => [k, { recordId: row.recordId, row: row.row }]))]));
  const remote = Object.fromEntries(destinations.map((d) => [d, Object.fromEntries(store.remoteRecordIds(d, undefined, 1_000_000).map((id) => [id, store.remoteOf(d, id) ?? null]))]));
  return { records, members, counts, rows, remote };
}

/**
 * Where two dumps (dumpState) differ, as "section/key: this ≠ that" lines, at most `limit` of them. A
 * toEqual over 20,000 records prints too little of the difference to find it ("no visual difference").
 */
export function dumpDifferences(a: Obj, b: Obj, limit = 10): string[] {
  const out: string[] = [];
  // Keys sorted (a row's columns may come in another order; toEqual does not mind), -0 told from 0.
  const text = (v: unknown): string =>
    v === undefined
      ? "(none)"
      : JSON.stringify(v, (_k, x: unknown) =>
          typeof x === "number" && Object.is(x, -0) ? "-0" : x !== null && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : 1))) : x,
        );
  for (const section of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = (a[section] ?? {}) as Obj;
    const y = (b[section] ?? {}) as Obj;
    for (const key of new Set([...Object.keys(x), ...Object.keys(y)])) {
      const [tx, ty] = [text(x[key]), text(y[key])];
      if (tx !== ty && out.length < limit) out.push(`${section}/${key}: ${tx.slice(0, 400)} ≠ ${ty.slice(0, 400)}`);
    }
  }
  return out;
}

/**
 * The scenarios a test file runs in `mode` ("restart" or "reload"): those in `both` by each, the others
 * by one of the two in turn (each converged by both when it was written; run twice, they cost CI time
 * for no bug either ever found alone).
 */
export function scenariosFor<T>(mode: "restart" | "reload", entries: readonly [string, T][], both: ReadonlySet<string>): [string, T][] {
  return entries.filter(([name], i) => both.has(name) || (i % 2 === 0) === (mode === "restart"));
}

export interface ConvergenceResult {
  state: Obj;
  oracleState: Obj;
  table: Obj[];
  oracleTable: Obj[];
}

/**
 * Runs a scenario with the config changes applied by `mode`, then a fresh daemon on the last config,
 * and returns both states and destination tables for the caller to compare.
 */
export async function converge(db: TestDatabase, scenario: ConvergenceScenario, mode: "restart" | "reload"): Promise<ConvergenceResult> {
  for (const sql of [...SHOP_SCHEMA, ...(scenario.setup ?? []), ...SHOP_DATA]) await db.query(sql);
  const work = mkdtempSync(join(tmpdir(), "converge-"));
  const file = join(work, "config.json");
  const writes = scenario.writes ?? ((step: number) => shopWrites(step + 1));
  const configs = scenario.configs.map((c) => concrete(c, db.url, "scenario", "crm"));
  let running: Running | undefined;
  let oracle: Running | undefined;
  try {
    running = await start(file, configs[0] as Obj[], join(work, "state"));
    await scenario.settled?.(running, configs[0] as Obj[]);
    await settle(db, [running], "first config");
    if (!scenario.writesBeforeChange) {
      for (const sql of writes(0)) await db.query(sql);
      await settle(db, [running], "first config, writes");
    }
    for (let step = 1; step < configs.length; step += 1) {
      const config = configs[step] as Obj[];
      if (scenario.writesBeforeChange) for (const sql of writes(step)) await db.query(sql);
      if (mode === "restart") {
        await running.daemon.drain("SIGTERM");
        await running.daemon.finished;
        running = await start(file, config, running.state);
      } else {
        writeFileSync(file, JSON.stringify(config, null, 1));
        const result = await running.daemon.reload("test");
        if (result !== "applied") throw new Error(`the reload was ${result}`);
        running.destinations = destinationsOf(config);
      }
      // The source keeps changing while the new config's Runs go on.
      if (!scenario.writesBeforeChange) for (const sql of writes(step)) await db.query(sql);
      await scenario.settled?.(running, config);
      await settle(db, [running], `config ${step + 1}`);
    }
    const last = scenario.configs[scenario.configs.length - 1] as Obj[];
    if (scenario.oracleSeed === "copy") await db.query(`INSERT INTO crm_oracle SELECT * FROM crm`);
    oracle = await start(join(work, "oracle.json"), concrete(last, db.url, "oracle", "crm_oracle"), join(work, "oracle-state"));
    await scenario.settled?.(oracle, last);
    // Both end on the same data: the last sentinel reaches both.
    await settle(db, [oracle, running], "oracle and scenario");
    const ids = (cls: string) => last.filter((o) => o.class === cls).map((o) => String(o.id));
    const sources = last.filter((o) => o.class === "source" && o.id !== "users_table").map((o) => String(o.id));
    const dump = (r: Running) => dumpState(r.daemon.state, ids("model"), ids("destination"), ids("group"), sources);
    const table = (await db.query(`SELECT * FROM crm ORDER BY id`)).rows as Obj[];
    const oracleTable = (await db.query(`SELECT * FROM crm_oracle ORDER BY id`)).rows as Obj[];
    return { state: dump(running), oracleState: dump(oracle), table, oracleTable };
  } finally {
    await stopAll([running, oracle]);
    rmSync(work, { recursive: true, force: true });
  }
}

/** Drains and stops the daemons that started (SIGTERM, as an operator stops one). */
export async function stopAll(daemons: readonly (Running | undefined)[]): Promise<void> {
  for (const r of daemons) {
    if (!r) continue;
    await r.daemon.drain("SIGTERM");
    await r.daemon.finished;
  }
}

/** Waits until `r` holds record `model`/`id`, its Runs are done and destination `destination`'s outbox is empty. */
export const settledOn = (r: Running, model: string, id: string, destination = "crm") =>
  waitFor(`${model}/${id} applied, Runs done, outbox delivered`, async () => (r.daemon.state.getRecord(model, id) && r.daemon.runs?.pending().length === 0 && r.daemon.state.outboxDepth(destination) === 0 ? true : undefined), 60_000);

/**
 * Takes the daemon on `file` to config `next`: a reload (the file rewritten, SIGHUP's path) or a
 * restart on the same state. Returns the daemon running after; when it throws, none is left running.
 */
export async function changeConfig(mode: "reload" | "restart", running: Running, file: string, next: Obj[]): Promise<Running> {
  if (mode === "restart") {
    await stopAll([running]);
    return start(file, next, running.state);
  }
  writeFileSync(file, JSON.stringify(next));
  const outcome = await running.daemon.reload("test").catch((error: unknown) => String(error));
  if (outcome === "applied") return { ...running, destinations: destinationsOf(next) };
  await stopAll([running]);
  throw new Error(`the reload was not applied: ${outcome}`);
}

/**
 * Holds each Run of `kind` before it begins until `streamed` holds of the state (the stream applied
 * what the test needs to have streamed before it), or 8 s; `seen` records which, once per Run. Cleared
 * by `delete RUN_HOOKS.beforeBegin`.
 */
export function holdRunUntilStreamed(kind: RunState["kind"], label: string, streamed: (store: Store) => boolean, seen: string[]): void {
  RUN_HOOKS.beforeBegin = async (run, store) => {
    if (run.kind !== kind) return;
    const done = await waitFor(label, async () => (streamed(store) ? true : undefined), 8000).catch(() => false);
    seen.push(done ? "streamed before the removal" : "nothing streamed before the removal");
  };
}
