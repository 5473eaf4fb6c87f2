// A jsonl-file destination whose directory cannot be made or written, against the daemon as a process:
// `run` exits 78 naming the destination and the path; a SIGHUP adding such a destination is refused
// and the running config goes on; a directory replaced by a file while running makes the destination
// fail, named on /readyz and /status, its exports retried, until a write succeeds again; and a reload
// whose component cannot even be created (a plugin's constructor throws) keeps the running config.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("jsonl-file destination that cannot write", () => {
  const work = mkdtempSync(join(tmpdir(), "file-dest-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const config = (url: string, slot: string, destinations: string) => `
- { class: app, id: shop, type: postgres, options: { connectionString: "${url}", slot: ${slot}, publication: ${slot} } }
- { class: app, id: files, type: file, options: { directory: "${work}" } }
- { class: app, id: blocked, type: file, options: { directory: "${work}/h2/files" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: destination, id: out, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: out/users.jsonl }, mapping: { id: user_id } }
${destinations}`;
  const blocked = "- { class: destination, id: stuck, type: jsonl-file, appId: blocked, modelId: users, collection: model, syncMode: sync, options: { path: users.jsonl }, mapping: { id: user_id } }";
  const lines = (path: string) => (existsSync(path) ? readFileSync(path, "utf8").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { recordId: string }) : []);
  const logLines = (daemon: DaemonProcess) =>
    daemon
      .logs()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string; destination?: string });

  it("exits 78 at start naming the destination and its path when its directory is a file", { timeout: 60_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "file_dest_start");
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      mkdirSync(join(work, "h2"), { recursive: true });
      writeFileSync(join(work, "h2", "files"), "a file where the directory should be\n");
      const file = join(work, "start.yml");
      writeFileSync(file, config(db.url, "file_dest_start", blocked));
      const daemon = startDaemon(["--config", file, "--state", join(work, "start-state")], `127.0.0.1:${await freePort()}`);
      expect((await daemon.exited).code).toBe(78);
      const refused = logLines(daemon).find((l) => l.level === 50 && l.msg.startsWith('destination "stuck"'));
      expect(refused?.msg).toBe(`destination "stuck": cannot write ${work}/h2/files/users.jsonl: ${work}/h2/files is a file, not a directory; not starting`);
    } finally {
      await db.drop();
    }
  });

  it("refuses a reload adding it, keeps streaming, names a directory that turned into a file on /readyz and /status, and recovers", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "file_dest_reload");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      await db.query(`INSERT INTO users VALUES (1), (2)`);
      mkdirSync(join(work, "h2"), { recursive: true });
      writeFileSync(join(work, "h2", "files"), "a file where the directory should be\n");
      const file = join(work, "reload.yml");
      writeFileSync(file, config(db.url, "file_dest_reload", ""));
      const http = `127.0.0.1:${await freePort()}`;
      const out = join(work, "out", "users.jsonl");
      daemon = startDaemon(["--config", file, "--state", join(work, "reload-state"), "--api-insecure", "--max-backoff-ms", "300", "--max-attempts", "2"], http);
      const running = daemon;
      const metrics = async () => (await get(http, "/metrics")).body;
      await running.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      await running.until("both rows written", async () => (lines(out).length === 2 ? true : undefined));

      // A reload adding a destination whose directory cannot be made: refused, the running config goes on.
      writeFileSync(file, config(db.url, "file_dest_reload", blocked));
      running.child.kill("SIGHUP");
      await running.until("the reload refused", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="invalid"}') === 1 ? true : undefined));
      expect(running.logs()).toContain(`destination \\"stuck\\": cannot write ${work}/h2/files/users.jsonl: ${work}/h2/files is a file, not a directory; the new config is refused`);
      expect(running.child.exitCode).toBeNull();
      await db.query(`INSERT INTO users VALUES (3)`);
      await running.until("the running config still streaming", async () => (lines(out).length === 3 ? true : undefined));
      expect((await get(http, "/readyz")).status).toBe(200);

      // The destination's directory replaced by a file: writes fail (ENOTDIR), retried, named.
      rmSync(join(work, "out"), { recursive: true });
      writeFileSync(join(work, "out"), "not a directory\n");
      await db.query(`INSERT INTO users VALUES (4)`);
      const failing = await running.until("the destination failing on /readyz", async () => {
        const readyz = await get(http, "/readyz");
        return readyz.status === 503 && readyz.body.includes("destinations failing: out (") ? readyz.body : undefined;
      });
      expect(failing).toContain(`destinations failing: out (cannot write ${out}: ENOTDIR`);
      const status = JSON.parse((await get(http, "/api/v1/status")).body) as { ready: boolean; destinations: { id: string; ready: boolean; problem: string | null }[] };
      expect(status.ready).toBe(false);
      expect(status.destinations.find((d) => d.id === "out")).toMatchObject({ ready: false, problem: expect.stringContaining("ENOTDIR") as string });

      // The file gone: the next retry makes the directory, writes, and the problem clears.
      rmSync(join(work, "out"));
      await running.until("ready again", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined));
      expect(lines(out).map((l) => l.recordId)).toEqual(["4"]);
      expect(JSON.parse((await get(http, "/api/v1/status")).body)).toMatchObject({ ready: true });

      running.child.kill("SIGTERM");
      expect((await running.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });

  it("refuses a reload whose destination cannot be created (its constructor throws) and restarts the running config", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "file_dest_ctor");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY)`);
      await db.query(`INSERT INTO users VALUES (1)`);
      // A plugin whose destination's constructor throws (what a built-in's mkdir did before).
      const plugin = join(work, "plugin-broken");
      mkdirSync(plugin, { recursive: true });
      writeFileSync(join(plugin, "package.json"), JSON.stringify({ name: "grouparoo-stream-plugin-broken", version: "1.0.0", type: "module", main: "index.js" }));
      writeFileSync(
        join(plugin, "index.js"),
        `export default { name: "grouparoo-stream-plugin-broken", destinations: [{ type: "broken", appType: "file", options: { type: "object", additionalProperties: false }, create() { throw new Error("cannot open the broken store"); } }] };\n`,
      );
      const file = join(work, "ctor.yml");
      writeFileSync(file, config(db.url, "file_dest_ctor", ""));
      const http = `127.0.0.1:${await freePort()}`;
      const out = join(work, "out", "users.jsonl");
      rmSync(join(work, "out"), { recursive: true, force: true });
      daemon = startDaemon(["--config", file, "--state", join(work, "ctor-state"), "--plugin", plugin], http);
      const running = daemon;
      const metrics = async () => (await get(http, "/metrics")).body;
      await running.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      await running.until("the row written", async () => (lines(out).length === 1 ? true : undefined));

      writeFileSync(file, config(db.url, "file_dest_ctor", "- { class: destination, id: fragile, type: broken, appId: files, modelId: users, collection: model, syncMode: sync, options: {}, mapping: { id: user_id } }"));
      running.child.kill("SIGHUP");
      await running.until("the reload refused", async () => (sample(await metrics(), 'grouparoo_config_reload_total{result="invalid"}') === 1 ? true : undefined));
      await running.until("ready again", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined));
      expect(running.child.exitCode).toBeNull();
      const refused = logLines(running).find((l) => l.msg.startsWith("the new config cannot start"));
      expect(refused).toMatchObject({ level: 50 });
      expect(refused?.msg).toBe(`the new config cannot start: ${file}: destination "fragile" cannot be created: cannot open the broken store; the running config is kept (started again)`);
      await db.query(`INSERT INTO users VALUES (2)`);
      await running.until("the running config streaming again", async () => (lines(out).length === 2 ? true : undefined));

      running.child.kill("SIGTERM");
      expect((await running.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
