// External tools the deploy checks run (systemd-analyze, promtool). A missing tool fails the test
// with the command that installs it: these checks are never skipped.
import { spawnSync } from "node:child_process";

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `tool args` to completion; throws, saying how to install it, when the tool is missing. */
export function runTool(tool: string, args: readonly string[], install: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ToolResult {
  const result = spawnSync(tool, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: "utf8", timeout: 60_000 });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === "ENOENT";
    throw new Error(missing ? `${tool} is not installed: ${install}` : `${tool} failed to run: ${result.error.message}`);
  }
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
