// Small process utilities the service harness shares: free loopback ports, running a command to
// completion, waiting for a TCP port, and reading the tail of a log for error messages.
import { randomInt } from "node:crypto";
import { spawn, type SpawnOptions } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";

export class ServiceStartError extends Error {
  readonly code = "SERVICE_START_FAILED";
  constructor(service: string, reason: string) {
    super(`${service} could not start: ${reason}`);
    this.name = "ServiceStartError";
  }
}

/** Asks the kernel for a free port on 127.0.0.1. */
/**
 * A port that is free now, below Linux's ephemeral range (32768-60999): a port taken from that range
 * (listen on 0) can meanwhile become the local port of an outgoing connection, and the server meant
 * for it then fails with EADDRINUSE.
 */
/** Ports this process handed out: two services started at once never get the same one. */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = 20_000 + randomInt(12_000);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
  }
  throw new Error("no free port found below the ephemeral range after 50 attempts");
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export interface CommandResult {
  code: number | null;
  /** Standard output alone. */
  stdout: string;
  /** Standard output and standard error, interleaved as they arrived. */
  output: string;
}

/** Runs a command to completion, capturing stdout and stderr together. */
export function runCommand(command: string, args: readonly string[], options: SpawnOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      output += chunk.toString();
    });
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, output }));
  });
}

/** Resolves once something accepts TCP connections on host:port, or rejects after timeoutMs. */
export async function waitForPort(host: string, port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host, port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (!alive()) throw new Error(`the process exited before ${host}:${port} accepted connections`);
    if (Date.now() > deadline) throw new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function logTail(path: string, lines = 40): string {
  if (!existsSync(path)) return "(no log written)";
  return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}
