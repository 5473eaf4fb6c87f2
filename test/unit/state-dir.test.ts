// A state directory `run` (or a relay, or a worker) creates is its owner's only (0700), as systemd's
// StateDirectoryMode=0700 and the container's volume make it: it holds the records' values (emails,
// names). Before 2026-12-03 it was made with the process's umask (0755 under the usual 022), so any
// user of the machine could read a state made by a plain `grouparoo-stream run`.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createStateDir } from "../../state/open.js";

const mode = (path: string) => statSync(path).mode & 0o777;

describe("the state directory run creates", () => {
  const work = mkdtempSync(join(tmpdir(), "state-dir-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("is 0700, its missing parents made with the umask's mode", () => {
    const state = join(work, "var", "lib", "grouparoo-stream");
    createStateDir(state);
    expect(mode(state)).toBe(0o700);
    const umask = process.umask();
    expect(mode(join(work, "var"))).toBe(0o777 & ~umask);
    expect(mode(join(work, "var", "lib"))).toBe(0o777 & ~umask);
  });

  it("leaves the mode of a directory that exists as it is", () => {
    const state = join(work, "shared");
    mkdirSync(state);
    chmodSync(state, 0o750);
    createStateDir(state);
    expect(mode(state)).toBe(0o750);
  });

  it("still names a file in its place, or in a parent's", () => {
    const file = join(work, "a-file");
    writeFileSync(file, "");
    expect(() => createStateDir(file)).toThrow(`cannot open the state directory ${file}: it (or a parent of it) is a file, not a directory`);
    expect(() => createStateDir(join(file, "state"))).toThrow(`cannot open the state directory ${join(file, "state")}: it (or a parent of it) is a file, not a directory`);
  });
});
