// A third-party destination plugin, installed as an npm package and named with --plugin: its type
// validates with its own options schema and the daemon delivers to it.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { CLI, runCli } from "../helpers/cli.js";
import { freePort } from "../services/process.js";
import { get, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { spawn } from "node:child_process";

describe("third-party plugins", () => {
  const work = mkdtempSync(join(tmpdir(), "plugin-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  mkdirSync(join(work, "node_modules"), { recursive: true });
  cpSync(new URL("../fixtures/plugin-memo", import.meta.url).pathname, join(work, "node_modules", "grouparoo-stream-plugin-memo"), { recursive: true });

  const config = (url: string, options: string) => `
- { class: app, id: shop, type: postgres, options: { connectionString: "${url}" } }
- { class: app, id: files, type: file, options: { directory: "${work}" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: destination, id: memo, type: memo, appId: files, modelId: users, collection: model, syncMode: sync, options: ${options}, mapping: { id: user_id } }
`;

  it("validates a plugin's destination type with its options schema, by package name", async () => {
    writeFileSync(join(work, "good.yml"), config("postgres://x@127.0.0.1/db", "{ file: memo.jsonl }"));
    writeFileSync(join(work, "bad.yml"), config("postgres://x@127.0.0.1/db", "{ path: memo.jsonl }"));
    const withPlugin = await runCli(["validate", "--config", "good.yml", "--plugin", "grouparoo-stream-plugin-memo"], { cwd: work });
    expect(withPlugin).toEqual({ code: 0, stdout: "good.yml: valid config: 2 apps, 1 model, 1 source, 1 property, 1 destination\n", stderr: "" });
    const badOptions = await runCli(["validate", "--config", "bad.yml", "--plugin", "grouparoo-stream-plugin-memo"], { cwd: work });
    expect(badOptions.code).toBe(78);
    expect(badOptions.stderr).toContain('error: bad.yml: destination "memo": options.path: is not a known field');
    expect(badOptions.stderr).toContain('error: bad.yml: destination "memo": options.file: is required');
    const without = await runCli(["validate", "--config", "good.yml"], { cwd: work });
    expect(without.code).toBe(78);
    expect(without.stderr).toContain('destination "memo": type: must be one of postgres-table, kafka-topic, webhook, jsonl-file (got "memo")');
    const missing = await runCli(["validate", "--config", "good.yml", "--plugin", "grouparoo-stream-plugin-nope"], { cwd: work });
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/^error: plugin grouparoo-stream-plugin-nope: cannot be found from /);
  });

  it("delivers to the plugin's destination when the daemon runs with it", { timeout: 60_000 }, async () => {
    const db = await createTestDatabase(inject("pgUrl"), "plugin");
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      await db.query(`INSERT INTO users VALUES (1), (2), (3)`);
      writeFileSync(join(work, "run.yml"), config(db.url, "{ file: memo.jsonl }"));
      const http = `127.0.0.1:${await freePort()}`;
      const child = spawn(process.execPath, [CLI, "run", "--config", "run.yml", "--state", "state", "--http", http, "--plugin", "grouparoo-stream-plugin-memo"], { cwd: work, stdio: "ignore" });
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      await waitFor("memo written", async () => (existsSync(join(work, "memo.jsonl")) && readFileSync(join(work, "memo.jsonl"), "utf8").trim().split("\n").length === 3 ? true : undefined));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const lines = readFileSync(join(work, "memo.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { recordId: string });
      expect(lines.map((l) => l.recordId).sort()).toEqual(["1", "2", "3"]);
    } finally {
      await db.drop();
    }
  });
});
