// systemd's service notification protocol (sd_notify(3)) for a `Type=notify` unit
// (deploy/systemd/grouparoo-stream.service): READY=1 once the daemon is started, STATUS= lines,
// WATCHDOG=1 every WATCHDOG_USEC / 2 while the event loop runs, STOPPING=1 on drain, and
// RELOADING=1 (with MONOTONIC_USEC=, as systemd 253+ requires for Type=notify-reload) then READY=1
// around a reload. Without NOTIFY_SOCKET every call is a no-op: no socket, no timer, and the native
// datagram module is not even loaded.
//
// Wiring (daemon/run.ts): create it first; status() while starting; ready() once HTTP listens and the
// pipeline and deliveries run; status() when /readyz's answer changes; stopping() as a drain begins;
// reloading() then ready() around a SIGHUP reload; close() before returning the exit code.
//
// Node's dgram has no AF_UNIX datagram sockets, so the datagram goes through `unix-dgram` (a small
// native addon, built by npm ci: package.json allowScripts). Like libsystemd's sd_notify, each message
// opens a socket, sends one datagram and closes it, so nothing stays open to keep the process alive.
import { createRequire } from "node:module";
import { constants } from "node:os";

export interface SystemdNotifier {
  /** True when NOTIFY_SOCKET names a socket path that messages are sent to. */
  readonly enabled: boolean;
  /** The watchdog ping interval (WATCHDOG_USEC / 2, in ms) while pinging, else undefined. */
  readonly watchdogIntervalMs: number | undefined;
  /** READY=1 (and STATUS=): start-up or a reload is complete. */
  ready(status?: string): void;
  /** STATUS=: a one-line state shown by `systemctl status`. */
  status(text: string): void;
  /** EXTEND_TIMEOUT_USEC= (and STATUS=): start-up goes on for at least `ms` more (long work before READY=1). */
  extendTimeout(ms: number, status?: string): void;
  /** RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, µs); follow it with ready() when done. */
  reloading(status?: string): void;
  /** STOPPING=1: the daemon is draining. */
  stopping(status?: string): void;
  /** Stops the watchdog pings; later calls send nothing. */
  close(): void;
}

export interface SystemdNotifierOptions {
  /** This process's pid, compared with WATCHDOG_PID (default process.pid). */
  pid?: number;
  /** Called when a message cannot be sent or NOTIFY_SOCKET cannot be used; never throws. */
  onError?: (error: Error) => void;
  /** CLOCK_MONOTONIC in µs (default: process.hrtime, which is CLOCK_MONOTONIC on Linux). */
  monotonicUsec?: () => bigint;
}

/** The part of unix-dgram used here (it ships no type declarations). */
interface UnixDgramSocket {
  on(event: "error", listener: (error: Error) => void): void;
  send(buffer: Buffer, offset: number, length: number, path: string, callback: (error?: Error & { code?: number | string }) => void): void;
  close(): void;
}
interface UnixDgram {
  createSocket(type: "unix_dgram"): UnixDgramSocket;
}

const DISABLED: SystemdNotifier = {
  enabled: false,
  watchdogIntervalMs: undefined,
  ready: () => undefined,
  status: () => undefined,
  extendTimeout: () => undefined,
  reloading: () => undefined,
  stopping: () => undefined,
  close: () => undefined,
};

/** unix-dgram reports a failed call as a negative errno number (named here: ENOENT, ECONNREFUSED, ...)
 * and a full socket buffer as code 1. */
function reason(error: Error & { code?: number | string }): string {
  if (error.code === 1) return "EAGAIN (the socket's buffer is full)";
  if (typeof error.code !== "number" || error.code >= 0) return error.message;
  const errno = -error.code;
  return Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
}

/** A STATUS= value is one line. */
const oneLine = (text: string) => text.replace(/[\r\n]+/g, " ");

/** The watchdog interval asked for by the environment (sd_watchdog_enabled(3)), or undefined. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number = process.pid): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d+$/.test(usec) || Number(usec) <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== String(pid)) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2 / 1000));
}

export function createSystemdNotifier(env: NodeJS.ProcessEnv = process.env, options: SystemdNotifierOptions = {}): SystemdNotifier {
  const path = env.NOTIFY_SOCKET;
  if (path === undefined || path === "") return DISABLED;
  const report = (error: Error) => {
    try {
      options.onError?.(error);
    } catch {
      // a failing error handler must not take the daemon down either
    }
  };
  if (!path.startsWith("/")) {
    // "@name" (abstract namespace) and "vsock:" addresses: unix-dgram copies the path with strncpy.
    report(new Error(`systemd notify: NOTIFY_SOCKET=${path} is not a socket path (abstract and vsock addresses are not supported); not notifying`));
    return DISABLED;
  }
  let dgram: UnixDgram;
  try {
    dgram = createRequire(import.meta.url)("unix-dgram") as UnixDgram;
  } catch (error) {
    report(new Error(`systemd notify: cannot load unix-dgram (${(error as Error).message}); not notifying`));
    return DISABLED;
  }
  const monotonicUsec = options.monotonicUsec ?? (() => process.hrtime.bigint() / 1000n);
  let closed = false;

  const send = (lines: (string | undefined)[]) => {
    if (closed) return;
    const buffer = Buffer.from(lines.filter((l) => l !== undefined).join("\n"));
    const failed = (error: (Error & { code?: number | string }) | undefined) => {
      if (error) report(new Error(`systemd notify: sending to ${path} failed: ${reason(error)}`));
    };
    try {
      const socket = dgram.createSocket("unix_dgram");
      socket.on("error", failed);
      socket.send(buffer, 0, buffer.length, path, failed);
      socket.close();
    } catch (error) {
      failed(error as Error & { code?: number | string });
    }
  };
  const statusLine = (status: string | undefined) => (status === undefined ? undefined : `STATUS=${oneLine(status)}`);

  const interval = watchdogIntervalMs(env, options.pid ?? process.pid);
  const timer = interval === undefined ? undefined : setInterval(() => send(["WATCHDOG=1"]), interval);
  timer?.unref();

  return {
    enabled: true,
    get watchdogIntervalMs() {
      return closed ? undefined : interval;
    },
    ready: (status) => send(["READY=1", statusLine(status)]),
    status: (text) => send([statusLine(text)]),
    extendTimeout: (ms, status) => send([`EXTEND_TIMEOUT_USEC=${Math.max(1, Math.round(ms * 1000))}`, statusLine(status)]),
    reloading: (status) => send(["RELOADING=1", `MONOTONIC_USEC=${monotonicUsec()}`, statusLine(status)]),
    stopping: (status) => send(["STOPPING=1", statusLine(status)]),
    close: () => {
      closed = true;
      if (timer) clearInterval(timer);
    },
  };
}
