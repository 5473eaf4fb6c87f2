// Runs the compiled CLI as a process, the way an SRE does, and returns its exit code and output.
import { spawn, type ChildProcess } from "node:child_process";

export const CLI = new URL("../../dist/daemon/cli.js", import.meta.url).pathname;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Processes a test started that are still running when its worker exits (a test that timed out never
 * reached its own cleanup): killed by pid, so none outlives the run.
 */
const started = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** Keeps `child` to be killed when this test worker exits, if it still runs then. */
export function reap<T extends ChildProcess>(child: T): T {
  started.add(child);
  child.once("exit", () => started.delete(child));
  return child;
}

/** Runs the CLI with `args`; `nodeArgs` go to Node before the CLI's path (Node's own flags). */
export function runCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: readonly string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = reap(spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], { env: options.env ?? process.env, cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] }));
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}
