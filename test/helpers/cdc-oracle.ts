// The fidelity oracle for one postgres-cdc source: a daemon (in-process, as `run` runs it) streams a
// table through writes and DDL (restarting where the script says), then a fresh daemon (empty state, new
// slot and publication) reads the same final table, and both states and jsonl destinations are compared.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Daemon } from "../../daemon/daemon.js";
import { freePort } from "../services/process.js";
import { waitFor } from "./daemon.js";
import { dumpState, type Obj } from "./converge.js";
import type { TestDatabase } from "./postgres.js";

/** A step of the script: SQL, a restart of the streaming daemon, a wait until it applied everything, or a pause (for its table checks). */
export type Step = string | { restart: true } | { settle: true } | { sleepMs: number };

export interface OracleResult {
  state: Obj;
  oracleState: Obj;
  /** The last line each destination file holds per record (what the remote side ends with). */
  remote: Obj;
  oracleRemote: Obj;
  logs: Obj[];
}

/** A `people` model read from `table` (its `id` the unique `pid`), these properties, and a jsonl destination of them all. */
export function peopleConfig(url: string, slot: string, directory: string, table: string, properties: Obj[]): Obj[] {
  return [
    { class: "app", id: "pg", type: "postgres", options: { connectionString: url, slot, publication: slot } },
    { class: "app", id: "files", type: "file", options: { directory } },
    { class: "model", id: "people" },
    { class: "source", id: "src", type: "postgres-cdc", appId: "pg", modelId: "people", options: { table }, mapping: { id: "pid" } },
    { class: "property", id: "pid", type: "integer", unique: true, sourceId: "src", options: { column: "id" } },
    ...properties.map((p) => ({ class: "property", sourceId: "src", ...p })),
    { class: "destination", id: "out", type: "jsonl-file", appId: "files", modelId: "people", collection: "model", syncMode: "sync", options: { path: "out.jsonl" }, mapping: Object.fromEntries(properties.map((p) => [String(p.id), String(p.id)])) },
  ];
}

function lastLines(file: string): Obj {
  const out: Obj = {};
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n").filter(Boolean)) {
    const e = JSON.parse(line) as Obj;
    const id = String(e.recordId);
    if (e.toDelete) delete out[id];
    else out[id] = e.newRecordProperties;
  }
  return out;
}

export async function againstOracle(db: TestDatabase, table: string, properties: Obj[], steps: readonly Step[]): Promise<OracleResult> {
  const work = mkdtempSync(join(tmpdir(), "cdc-oracle-"));
  const logs: Obj[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as Obj) });
  const start = async (name: string) => {
    const file = join(work, `${name}.json`);
    writeFileSync(file, JSON.stringify(peopleConfig(db.url, `fid_${name}`, join(work, name), table, properties)));
    const daemon = await Daemon.start({ config: file, state: join(work, `${name}-state`), http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, logger);
    if (typeof daemon === "number") throw new Error(`the ${name} daemon did not start (exit ${daemon})`);
    return daemon;
  };
  let sentinel = 900_000;
  const settle = async (daemons: Daemon[]) => {
    sentinel += 1;
    const id = String(sentinel);
    await db.query(`INSERT INTO ${table} (id) VALUES (${id})`);
    for (const d of daemons) {
      await waitFor(`sentinel ${id} applied, Runs done, outbox delivered`, async () =>
        d.state.getRecord("people", id) && d.state.outboxDepth("out") === 0 && (d.runs?.pending().length ?? 0) === 0 ? true : undefined, 30_000);
    }
  };
  let streaming: Daemon | undefined;
  let oracle: Daemon | undefined;
  try {
    streaming = await start("streaming");
    await settle([streaming]);
    for (const step of steps) {
      if (typeof step === "string") await db.query(step);
      else if ("restart" in step) {
        await streaming.drain("SIGTERM");
        await streaming.finished;
        streaming = await start("streaming");
      } else if ("sleepMs" in step) await new Promise((resolve) => setTimeout(resolve, step.sleepMs));
      else await settle([streaming]);
    }
    await settle([streaming]);
    oracle = await start("oracle");
    await settle([streaming, oracle]);
    const dump = (d: Daemon) => dumpState(d.state, ["people"], ["out"], [], []);
    return {
      state: dump(streaming),
      oracleState: dump(oracle),
      remote: lastLines(join(work, "streaming", "out.jsonl")),
      oracleRemote: lastLines(join(work, "oracle", "out.jsonl")),
      logs,
    };
  } finally {
    for (const d of [streaming, oracle]) {
      if (!d) continue;
      await d.drain("SIGTERM");
      await d.finished;
    }
    rmSync(work, { recursive: true, force: true });
  }
}
