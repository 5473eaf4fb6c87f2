// The state's file system fills up while the daemon snapshots a table: the daemon exits 70 with one
// error naming the state, the failure and the space left, loses nothing, and a restart once there is
// room ends with every record and every export. Before 2026-12-03 a failed commit ended the process
// with exit 1 and lmdb-js's own stack ("Commit failed (see commitError for details)", an unhandled
// rejection of a promise lmdb-js made for itself), and the log's error said only "Commit failed",
// its cause an empty object (or "Input/output error: Attempting to setup locks after open", a stale
// text lmdb-js puts before a short write's EIO). Runs the daemon in a mount namespace of its own
// (root and unshare, as test/e2e/jsonl-readonly.test.ts) with the state on an 8 MiB tmpfs; and a new
// state on a full file system (16 KiB) is refused naming its directory, exit 74.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { CLI } from "../helpers/cli.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const ROWS = 50_000;

describe("the state's file system full", () => {
  const work = mkdtempSync(join(tmpdir(), "state-disk-full-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("exits 70 naming the state and the full file system, and a restart with room ends with everything", { timeout: 300_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "disk_full");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text, name text, score int)`);
      await db.query(`INSERT INTO users SELECT g, 'u' || g || '@x.com', repeat('n', 200) || g, g % 100 FROM generate_series(1, ${ROWS}) g`);
      const out = join(work, "out");
      const state = join(work, "state");
      mkdirSync(state);
      const config = join(work, "config.yml");
      writeFileSync(
        config,
        [
          `- { class: app, id: pg, type: postgres, options: { connectionString: "${db.url}", slot: ${db.name}, publication: ${db.name} } }`,
          `- { class: app, id: files, type: file, options: { directory: ${out} } }`,
          `- { class: model, id: users }`,
          `- { class: source, id: users_table, type: postgres-cdc, appId: pg, modelId: users, options: { table: users }, mapping: { id: user_id } }`,
          `- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }`,
          `- { class: property, id: name, type: string, sourceId: users_table, options: { column: name } }`,
          `- { class: property, id: score, type: integer, sourceId: users_table, options: { column: score } }`,
          `- { class: group, id: high, modelId: users, rules: [ { propertyId: score, op: gt, match: 50 } ] }`,
          `- { class: destination, id: out, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: users.jsonl }, mapping: { id: user_id, name: name }, destinationGroupMemberships: { High: high } }`,
        ].join("\n"),
      );
      // The state on a full file system: the daemon exits, and what it left is copied out of the
      // namespace (the tmpfs goes with it) to go on from.
      const kept = join(work, "kept");
      const script = `mount -t tmpfs -o size=8m tmpfs '${state}' && '${process.execPath}' '${CLI}' run --config '${config}' --state '${state}' --http 127.0.0.1:${await freePort()}; code=$?; cp -a '${state}' '${kept}'; exit $code`;
      const full = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", script], { encoding: "utf8", timeout: 120_000 });
      expect(full.error, "this test needs root and unshare (util-linux)").toBeUndefined();
      expect(full.stderr).not.toContain("Commit failed");
      expect(full.status).toBe(70);
      const errors = full.stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } })
        .filter((line) => line.level === 50 && line.msg === "pipeline failed");
      expect(errors).toHaveLength(1);
      // The daemon stops without draining the outbox into a state that cannot record it: before
      // 2026-12-03 each destination's loop went on for the drain's 10 s, failing (and logging) again
      // every second with "the state refuses writes after a failed transaction".
      expect(full.stdout).not.toContain("the state refuses writes after a failed transaction");
      expect(errors[0]?.err?.message).toMatch(
        new RegExp(
          `^a write transaction on the state ${state} failed: an I/O error \\(EIO; LMDB reports a short write so: the state's file system is full, or its disk failed\\) \\(its file system has [0-9.]+ (B|KiB) free of 8\\.0 MiB\\); nothing of it was written, and the state refuses further writes until the daemon restarts$`,
        ),
      );

      // With room again, the same state goes on to every record and every export.
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", kept], http);
      await daemon.until(
        "every record and an empty outbox",
        async () => {
          const metrics = (await get(http, "/metrics")).body;
          return sample(metrics, 'grouparoo_records{model="users"}') === ROWS && sample(metrics, 'grouparoo_outbox_depth{destination="out"}') === 0 ? true : undefined;
        },
        120_000,
      );
      const metrics = (await get(http, "/metrics")).body;
      expect(sample(metrics, 'grouparoo_group_members{group="high"}')).toBe(24_500);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
      // What the destination holds: each record's last line.
      const last = new Map<number, { name: string; high: boolean; toDelete: boolean }>();
      for (const line of readFileSync(join(out, "users.jsonl"), "utf8").trimEnd().split("\n")) {
        const e = JSON.parse(line) as { recordId: string; toDelete: boolean; newRecordProperties: { name: string }; newGroups: string[] };
        last.set(Number(e.recordId), { name: e.newRecordProperties.name, high: e.newGroups.includes("High"), toDelete: e.toDelete });
      }
      expect(last.size).toBe(ROWS);
      const wrong = [...last].filter(([id, e]) => e.toDelete || e.name !== `${"n".repeat(200)}${id}` || e.high !== id % 100 > 50);
      expect(wrong).toEqual([]);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });

  // Before 2026-12-03 a new state on a full file system exited 70 saying only lmdb-js's text (`error:
  // No space left on device: Attempting to write page at position 8192, ...`), naming no directory.
  it("a new state on a full file system exits 74 naming the state directory", { timeout: 60_000 }, () => {
    const state = join(work, "tiny");
    mkdirSync(state);
    const config = join(work, "idle.yml");
    writeFileSync(config, "[]\n");
    const script = `mount -t tmpfs -o size=16k tmpfs '${state}' && exec '${process.execPath}' '${CLI}' run --config '${config}' --state '${state}' --http 127.0.0.1:0`;
    const result = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", script], { encoding: "utf8", timeout: 30_000 });
    expect(result.error, "this test needs root and unshare (util-linux)").toBeUndefined();
    const errors = result.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { level: number; msg: string; state?: string })
      .filter((line) => line.level >= 50);
    expect(errors.map((e) => ({ state: e.state, msg: e.msg.replace(/\(ENOSPC: .*\)$/, "(ENOSPC: ...)") }))).toEqual([
      { state, msg: `cannot open the state directory ${state}: no space left on its file system (ENOSPC: ...)` },
    ]);
    expect(result.status).toBe(74);
  });
});
