// A jsonl-file destination whose directory is on a read-only file system (a read-only mount, or the
// systemd unit's ProtectSystem=strict outside its ReadWritePaths=) is refused by the live check with
// that reason. Before 2026-12-03 the check said "permission denied on the directory", which sent an SRE
// to chmod a directory no mode change could open. Runs `validate --connect` in a mount namespace of its
// own (root and unshare, as test/e2e/container-build.test.ts) over a read-only tmpfs.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../helpers/cli.js";

describe("a jsonl-file destination on a read-only file system", () => {
  const work = mkdtempSync(join(tmpdir(), "jsonl-readonly-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("is refused by validate --connect naming the read-only file system, exit 78", () => {
    const out = join(work, "out");
    mkdirSync(out);
    const config = join(work, "config.yml");
    writeFileSync(
      config,
      [
        // A database not reached is a warning: the check goes on to the destination.
        `- { class: app, id: pg, type: postgres, options: { connectionString: "postgres://x@127.0.0.1:1/db" } }`,
        `- { class: app, id: files, type: file, options: { directory: ${out} } }`,
        `- { class: model, id: users }`,
        `- { class: source, id: users_table, type: postgres-cdc, appId: pg, modelId: users, options: { table: users }, mapping: { id: user_id } }`,
        `- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }`,
        `- { class: destination, id: out, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: users.jsonl }, mapping: { id: user_id } }`,
        `- { class: destination, id: deep, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: a/b/users.jsonl }, mapping: { id: user_id } }`,
      ].join("\n"),
    );
    const result = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs -o ro tmpfs '${out}' && exec '${process.execPath}' '${CLI}' validate --config '${config}' --connect`], { encoding: "utf8" });
    expect(result.error, "this test needs root and unshare (util-linux)").toBeUndefined();
    const errors = result.stderr.split("\n").filter((line) => line.startsWith("error: "));
    expect(errors).toEqual([
      `error: destination "out": cannot write ${out}/users.jsonl: read-only file system on the directory ${out}`,
      `error: destination "deep": cannot write ${out}/a/b/users.jsonl: the directory ${out}/a/b cannot be created (read-only file system on ${out})`,
    ]);
    expect(result.status).toBe(78);
  });
});
