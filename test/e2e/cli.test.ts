// The compiled CLI, run as a process the way an SRE runs it.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const cli = new URL("../../dist/daemon/cli.js", import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

describe("grouparoo-stream CLI", () => {
  it("prints the package version with --version", async () => {
    const { stdout } = await run("node", [cli, "--version"]);
    expect(stdout).toBe(`${pkg.version}\n`);
  });

  it("prints usage with --help", async () => {
    const { stdout } = await run("node", [cli, "--help"]);
    expect(stdout.split("\n")[0]).toBe("Usage: grouparoo-stream [options] [command]");
  });

  it("rejects an unknown command with exit code 64 (EX_USAGE) and names it", async () => {
    const error = await run("node", [cli, "frobnicate"]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).toBe(64);
    expect(error?.stderr.split("\n")[0]).toBe("error: unknown command 'frobnicate'");
  });
});

describe("every command has --help", () => {
  it.each(["run", "validate", "generate", "import-debezium", "retry-exports", "runs", "rebuild", "status", "dead-letters"])("%s --help prints its usage and exits 0", async (command) => {
    const { stdout } = await run("node", [cli, command, "--help"]);
    expect(stdout.split("\n")[0]).toMatch(new RegExp(`^Usage: grouparoo-stream ${command} (\\[options\\]|\\[options\\] <file>)$`));
    expect(stdout).toContain("-h, --help");
  });
});
