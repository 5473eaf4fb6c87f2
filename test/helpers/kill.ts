// What the SIGKILL tests of config changes share (test/e2e/run-kill*.test.ts, reload-kill.test.ts): a
// shop of 20,000 users read once, a writer that keeps the source changing, the probe that finds a
// kind of Run in progress, the end (every Run done, the last change delivered) and the oracle's dump.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { expect } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { concreteShop, dumpState, SHOP_SCHEMA, shopConfig, type Obj } from "./converge.js";
import { get, killIfRunning, runsAllDone, sample, startDaemon, waitFor, type DaemonProcess } from "./daemon.js";
import type { TestDatabase } from "./postgres.js";

export interface KillShop {
  config: string;
  state: string;
  /** The daemon's arguments (config, state, a short batch delay). */
  args: string[];
}

/** The shop's tables with 20,000 users, 60,000 purchases and 10,000 refunds, read once by a daemon on shopConfig(). */
export async function killShop(db: TestDatabase, work: string): Promise<KillShop> {
  for (const sql of SHOP_SCHEMA) await db.query(sql);
  await db.query(`INSERT INTO users (id, email, name, vip) SELECT g, 'u' || g || '@example.com', 'n' || g, g % 3 = 0 FROM generate_series(1, 20000) g`);
  await db.query(`INSERT INTO purchases SELECT g, 1 + g % 20000, g % 97, 0, CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'successful' END, 'sku', '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(1, 60000) g`);
  await db.query(`INSERT INTO refunds SELECT g, 1 + (g * 7) % 20000, g % 13 FROM generate_series(1, 10000) g`);
  const config = join(work, "config.json");
  const state = join(work, "state");
  const args = ["--config", config, "--state", state, "--max-batch-delay-ms", "2"];
  writeFileSync(config, JSON.stringify(concreteShop(shopConfig(), db.url, "kill", "crm")));
  const http = `127.0.0.1:${await freePort()}`;
  const daemon = startDaemon(args, http);
  // Every row of the snapshot applied, not only the users: stopped sooner, the state held the first
  // batch of purchases (5,000 of them), so a removal Run over them was one short chunk (a quiet machine
  // finished it before it was caught once), and the next start read the snapshot again.
  await daemon.until("the first config read", async () => {
    const text = (await get(http, "/metrics")).body;
    const read = sample(text, 'grouparoo_records{model="users"}') === 20000 && sample(text, 'grouparoo_changes_applied_total{source="purchases_table",op="snapshot"}') === 60000;
    return read ? true : undefined;
  }, 60_000);
  daemon.child.kill("SIGTERM");
  expect((await daemon.exited).code).toBe(0);
  return { config, state, args };
}

export interface ChangeWriter {
  /** Stops writing; resolves with the number of steps written. */
  stop(): Promise<number>;
}

/** Keeps the source changing (purchases upserted, users' vip and name flipped, refunds deleted) until stopped. */
export function startChangeWriter(db: TestDatabase): ChangeWriter {
  let writing = true;
  let step = 0;
  const done = (async () => {
    while (writing) {
      step += 1;
      const user = 1 + ((step * 37) % 20000);
      await db.query(`INSERT INTO purchases VALUES ($1, $2, $3, 0, 'successful', 'sku', now()) ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount`, [100000 + (step % 500), user, step % 90]);
      if (step % 5 === 0) await db.query(`UPDATE users SET vip = NOT vip, name = 'w' || $2 WHERE id = $1`, [user, step]);
      if (step % 7 === 0) await db.query(`DELETE FROM refunds WHERE id = $1`, [1 + ((step * 11) % 10000)]);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      writing = false;
      await done;
      return step;
    },
  };
}

/**
 * "running" while a Run of `kind` is in progress in `daemon`, "done" once every one is complete (a
 * Run too short to be caught). From its log first: the sources and Runs start while the listener's
 * thread still boots, and a short Run may be over before /metrics answers.
 */
export function runOfKind(daemon: DaemonProcess, http: string, kind: string): () => Promise<"running" | "done" | undefined> {
  return async () => {
    const lines = daemon
      .logs()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg?: string; kind?: string; run?: string });
    const begun = lines.filter((l) => l.kind === kind && (l.msg === "run started" || l.msg === "run resumed")).map((l) => l.run);
    const over = new Set(lines.filter((l) => l.kind === kind && l.msg === "run complete").map((l) => l.run));
    if (begun.some((run) => !over.has(run))) return "running";
    const text = (await get(http, "/metrics").catch(() => ({ body: "" }))).body;
    const done = sample(text, `grouparoo_runs{kind="${kind}",state="complete"}`) ?? 0;
    const open = ["queued", "running"].reduce((n, s) => n + (sample(text, `grouparoo_runs{kind="${kind}",state="${s}"}`) ?? 0), 0);
    return done > 0 && open === 0 ? "done" : undefined;
  };
}

/**
 * The end after the kills: a daemon left to finish its Runs, the writer stopped, one last user inserted
 * and delivered (the model then holds 20,001 records and crm's outbox is empty), then stopped.
 * Resolves with the writer's steps.
 */
export async function finishAfterKills(db: TestDatabase, shop: KillShop, writer: ChangeWriter, model: string): Promise<number> {
  const http = `127.0.0.1:${await freePort()}`;
  const daemon = startDaemon(shop.args, http);
  try {
    await daemon.until("every Run done", async () => (runsAllDone((await get(http, "/metrics")).body) ? true : undefined), 120_000);
    const steps = await writer.stop();
    await db.query(`INSERT INTO users (id, email, name) VALUES (999999, 'last@example.com', 'last')`);
    await daemon.until("the last change delivered", async () => {
      const text = (await get(http, "/metrics")).body;
      return sample(text, `grouparoo_records{model="${model}"}`) === 20001 && sample(text, 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined;
    }, 120_000);
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    return steps;
  } finally {
    await killIfRunning(daemon);
  }
}

export type DumpArgs = readonly [models: readonly string[], destinations: readonly string[], groups: readonly string[], sources: readonly string[]];

/**
 * The state the killed daemon left (`shop.state`) and a fresh daemon's on `objects` over the same final
 * data (its destination on crm_oracle), both dumped; remote states left out (each its own table).
 */
export async function killedAndFresh(db: TestDatabase, shop: KillShop, work: string, objects: Obj[], model: string, dumpArgs: DumpArgs): Promise<{ dump: Obj; oracle: Obj }> {
  const oracleConfig = join(work, "oracle.json");
  writeFileSync(oracleConfig, JSON.stringify(concreteShop(objects, db.url, "oracle", "crm_oracle")));
  const fresh = await Daemon.start({ config: oracleConfig, state: join(work, "oracle-state"), http: `127.0.0.1:${await freePort()}` }, pino({ level: "silent" }));
  if (typeof fresh === "number") throw new Error(`the oracle did not start (${fresh})`);
  let oracle: Obj;
  try {
    await waitFor("the oracle read everything", async () => (fresh.state.getRecord(model, "999999") && (fresh.runs?.pending().length ?? 1) === 0 && fresh.state.outboxDepth("crm") === 0 ? true : undefined), 120_000);
    oracle = dumpState(fresh.state, ...dumpArgs);
  } finally {
    await fresh.drain("SIGTERM");
    await fresh.finished;
  }
  const store = Store.open(shop.state);
  try {
    return { dump: { ...dumpState(store, ...dumpArgs), remote: null }, oracle: { ...oracle, remote: null } };
  } finally {
    await store.close();
  }
}
