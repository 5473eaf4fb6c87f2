// Runs `grouparoo-stream run` as a process, the way an SRE does, and reads its HTTP endpoints.
import { spawn, type ChildProcess } from "node:child_process";
import { CLI, reap } from "./cli.js";

export interface DaemonProcess {
  child: ChildProcess;
  http: string;
  logs: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** waitFor, failing at once when the daemon exits, and naming its last log lines when it fails. */
  until: <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs?: number, intervalMs?: number) => Promise<T>;
}

/** Stops a daemon a test left running (it failed before stopping it), by its process id. */
export async function killIfRunning(daemon: DaemonProcess | undefined): Promise<void> {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill("SIGKILL");
    await daemon.exited;
  }
}

export function startDaemon(args: string[], http: string, env: NodeJS.ProcessEnv = process.env): DaemonProcess {
  const child = reap(spawn(process.execPath, [CLI, "run", ...args, "--http", http], { env, stdio: ["ignore", "pipe", "pipe"] }));
  let logs = "";
  child.stdout?.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => (exit = e));
  const tail = () => logs.trimEnd().split("\n").slice(-30).join("\n");
  const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs?: number, intervalMs?: number): Promise<T> =>
    waitFor(what, async () => {
      if (exit) throw new DaemonExited(`the daemon exited (code ${exit.code}, signal ${exit.signal}) while waiting for ${what}; its last log lines:\n${tail()}`);
      return probe();
    }, timeoutMs, intervalMs).catch((error: Error) => {
      throw error instanceof DaemonExited ? error : new Error(`${error.message}; the daemon's last log lines:\n${tail()}`);
    });
  return { child, http, logs: () => logs, exited, until };
}

class DaemonExited extends Error {}

export async function get(http: string, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${http}${path}`);
  return { status: response.status, body: await response.text() };
}

/** The value of one sample in a Prometheus text exposition, e.g. metric('grouparoo_records{model="users"}'). */
export function sample(metrics: string, series: string): number | undefined {
  for (const line of metrics.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Probes every `intervalMs` until `probe` gives a value; fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof DaemonExited) throw error;
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A daemon process's JSON log lines so far, parsed (any line that is not JSON left out). */
export type LogLine = Record<string, unknown> & { level: number; msg: string };
export function logLines(daemon: DaemonProcess): LogLine[] {
  return daemon
    .logs()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Whether a daemon's /metrics text shows its Runs and none running or queued. */
export function runsAllDone(metrics: string): boolean {
  const open = metrics.split("\n").filter((l) => l.startsWith("grouparoo_runs{") && (l.includes('state="running"') || l.includes('state="queued"')) && !l.endsWith(" 0"));
  return open.length === 0 && metrics.includes("grouparoo_runs{");
}
