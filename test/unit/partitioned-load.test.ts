// What the relay and the workers load (daemon/partitioned.ts): a model of the config that is not
// partitioned is no relay's or worker's, and before 2026-12-03 it was left alone without a word (its
// sources never read, its destinations sent nothing). Now each start names it, its sources and
// destinations, and what to do, at warn.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { loadPartitioned } from "../../daemon/partitioned.js";
import { scaleConfig, scaleNames } from "../helpers/scale.js";

const ACCOUNTS = [
  { class: "model", id: "accounts" },
  { class: "source", id: "accounts_table", type: "postgres-cdc", appId: "shop", modelId: "accounts", options: { table: "accounts" }, mapping: { id: "account_id" } },
  { class: "property", id: "account_id", type: "integer", unique: true, sourceId: "accounts_table", options: { column: "id" } },
  { class: "destination", id: "accounts_crm", type: "postgres-table", appId: "shop", modelId: "accounts", collection: "model", syncMode: "sync", options: { table: "accounts_crm", primaryKey: "id" }, mapping: { id: "account_id" } },
];

describe("relay and worker: a model that is not partitioned", () => {
  const work = mkdtempSync(join(tmpdir(), "partitioned-load-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const warnings = async (objects: unknown[]) => {
    const file = join(work, `config-${objects.length}.json`);
    writeFileSync(file, JSON.stringify(objects));
    const lines: { level: number; msg: string }[] = [];
    const loaded = await loadPartitioned({ config: file, http: "127.0.0.1:9464" }, pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }), "nothing");
    expect(typeof loaded).not.toBe("number");
    return lines.filter((l) => l.level === 40).map((l) => l.msg);
  };

  it("is named at start with its sources and destinations", async () => {
    const base = scaleConfig("postgres://127.0.0.1:1/shop", ["127.0.0.1:9092"], scaleNames("load"), { partitioned: true });
    expect(await warnings([...base, ...ACCOUNTS])).toEqual([
      'model "accounts" is not partitioned: the relay and the workers leave it alone (its sources accounts_table are not read, its destinations accounts_crm are sent nothing); run it with grouparoo-stream run on a config of its own whose postgres apps use slots of their own, or make it partitioned',
    ]);
    expect(await warnings(base)).toEqual([]);
  });
});
