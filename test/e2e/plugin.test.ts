// Third-party plugins named with --plugin: a destination plugin installed as an npm package (its type
// validates with its own options schema and the daemon delivers to it), and the example plugin under
// examples/ whose source and destination run end to end.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../helpers/cli.js";
import { freePort } from "../services/process.js";
import { get, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { spawn } from "node:child_process";
import { testPgUrl } from "../services/use.js";

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
    const db = await createTestDatabase(testPgUrl(), "plugin");
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

  it("runs the example plugin's source and destination end to end, and re-reads nothing after a restart", { timeout: 90_000 }, async () => {
    const plugin = new URL("../../examples/plugin-spool", import.meta.url).pathname;
    const spool = join(work, "spool");
    mkdirSync(join(spool, "in"), { recursive: true });
    writeFileSync(
      join(work, "spool.yml"),
      `
- { class: app, id: spool, type: spool, options: { directory: "${spool}" } }
- { class: model, id: users }
- { class: source, id: inbox, type: spool-inbox, appId: spool, modelId: users, options: { inbox: in }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: inbox, options: { column: id } }
- { class: property, id: email, type: email, sourceId: inbox, options: { column: email } }
- { class: destination, id: out, type: spool-outbox, appId: spool, modelId: users, collection: model, syncMode: sync, options: { outbox: out }, mapping: { id: user_id, email: email } }
`,
    );
    const validated = await runCli(["validate", "--config", "spool.yml", "--plugin", plugin], { cwd: work });
    expect(validated).toEqual({ code: 0, stdout: "spool.yml: valid config: 1 app, 1 model, 1 source, 2 properties, 1 destination\n", stderr: "" });
    writeFileSync(
      join(spool, "in", "0001.ndjson"),
      [
        { op: "insert", key: "1", row: { id: 1, email: "a@example.com" } },
        { op: "insert", key: "2", row: { id: 2, email: "b@example.com" } },
        { op: "insert", key: "3", row: { id: 3, email: "c@example.com" } },
        { op: "update", key: "2", row: { id: 2, email: "B@Example.com" } },
        { op: "delete", key: "3" },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    writeFileSync(join(spool, "in", "0002.ndjson"), `not json\n${JSON.stringify({ op: "insert", key: "4", row: { id: 4, email: "d@example.com" } })}\n`);
    /** The last export of each record the outbox files hold. */
    const remote = () => {
      const state = new Map<string, { toDelete: boolean; email: unknown }>();
      if (!existsSync(join(spool, "out"))) return state;
      for (const file of readdirSync(join(spool, "out")).filter((f) => f.endsWith(".ndjson")).sort()) {
        for (const line of readFileSync(join(spool, "out", file), "utf8").trim().split("\n")) {
          const e = JSON.parse(line) as { recordId: string; toDelete: boolean; newRecordProperties: { email: unknown } };
          state.set(e.recordId, { toDelete: e.toDelete, email: e.newRecordProperties.email });
        }
      }
      return state;
    };
    const start = async () => {
      const http = `127.0.0.1:${await freePort()}`;
      const child = spawn(process.execPath, [CLI, "run", "--config", "spool.yml", "--state", "spool-state", "--http", http, "--plugin", plugin], { cwd: work, stdio: "ignore" });
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      await waitFor("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      return { child, exited, http };
    };
    const first = await start();
    await waitFor("inbox files done", async () => (readdirSync(join(spool, "in")).sort().join(",") === "0001.ndjson.done,0002.ndjson.done" ? true : undefined));
    await waitFor("outbox written", async () => (remote().get("4") ? true : undefined));
    const metrics = (await get(first.http, "/metrics")).body;
    expect(metrics).toContain('grouparoo_dead_letters_total{component="inbox",kind="message"} 1');
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    // 3 was created and deleted in one batch: the destination never needed it.
    const expected = [
      ["1", { toDelete: false, email: "a@example.com" }],
      ["2", { toDelete: false, email: "b@example.com" }],
      ["4", { toDelete: false, email: "d@example.com" }],
    ];
    expect([...remote()].sort()).toEqual(expected);
    const files = readdirSync(join(spool, "out")).length;

    // A restart reads only what is new.
    const second = await start();
    writeFileSync(join(spool, "in", "0003.ndjson"), JSON.stringify({ op: "update", key: "1", row: { id: 1, email: "z@example.com" } }));
    await waitFor("new file done", async () => (existsSync(join(spool, "in", "0003.ndjson.done")) && remote().get("1")?.email === "z@example.com" ? true : undefined));
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(readdirSync(join(spool, "out")).length).toBe(files + 1);
  });
});
