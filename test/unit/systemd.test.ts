// The systemd notifier (daemon/systemd.ts) against a REAL unix datagram socket bound in a temp dir,
// standing in for systemd's: the exact datagrams for ready, status, reloading, stopping; watchdog
// pings every WATCHDOG_USEC / 2 (counted exactly on a fake interval, and timed on the real clock);
// WATCHDOG_PID of another process disables them; without NOTIFY_SOCKET nothing is sent, no socket is
// created, no timer is armed and nothing throws; an unreachable or unusable socket is reported, not
// thrown.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { runUntilSignalled } from "../../daemon/signals.js";
import { createSystemdNotifier, watchdogIntervalMs, type SystemdNotifier } from "../../daemon/systemd.js";

const unixDgram = createRequire(import.meta.url)("unix-dgram") as { createSocket(type: "unix_dgram"): { fd: number } };
const LISTENER = new URL("../fixtures/notify-listener.mjs", import.meta.url).pathname;

/** systemd's socket: a process bound at `path` that reports each datagram with its arrival time. */
async function listen(path: string) {
  const received: { message: string; at: number }[] = [];
  const child = spawn(process.execPath, [LISTENER, path], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the listener exited ${code}: ${stderr}`)));
    lines.on("line", (line) => {
      if (line === "listening") return resolve();
      const { message, atNs } = JSON.parse(line) as { message: string; atNs: string };
      received.push({ message, at: Number(BigInt(atNs) / 1000n) / 1000 });
    });
  });
  child.removeAllListeners("exit");
  return {
    received,
    messages: () => received.map((r) => r.message),
    close: () => new Promise<void>((resolve) => (child.exitCode === null ? child.once("exit", () => resolve()).kill("SIGTERM") : resolve())),
  };
}

/** CLOCK_MONOTONIC in ms, comparable with the listener's arrival times. */
const monotonicMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, probe: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe("systemd notifier", () => {
  let dir: string;
  let path: string;
  let receiver: Awaited<ReturnType<typeof listen>>;
  let notifier: SystemdNotifier | undefined;
  const errors: Error[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "sdn-"));
    path = join(dir, "notify");
    receiver = await listen(path);
    errors.length = 0;
  });
  afterEach(async () => {
    notifier?.close();
    notifier = undefined;
    await receiver.close();
    vi.useRealTimers();
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends READY=1 with STATUS=, STATUS= alone (one line), EXTEND_TIMEOUT_USEC=, then STOPPING=1", async () => {
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: path }, { onError: (e) => errors.push(e) });
    expect(notifier.enabled).toBe(true);
    expect(notifier.watchdogIntervalMs).toBeUndefined();
    notifier.status("starting: opening the state");
    notifier.extendTimeout(60_000, "starting: upgrading the state's layout (10,000 keys rewritten)");
    notifier.ready("running: 2 sources, 1 destination");
    notifier.status("not ready: sources not connected:\nshop_db");
    notifier.stopping("draining");
    notifier.ready();
    await until("six datagrams", () => receiver.received.length === 6);
    expect(receiver.messages()).toEqual([
      "STATUS=starting: opening the state",
      "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=starting: upgrading the state's layout (10,000 keys rewritten)",
      "READY=1\nSTATUS=running: 2 sources, 1 destination",
      "STATUS=not ready: sources not connected: shop_db",
      "STOPPING=1\nSTATUS=draining",
      "READY=1",
    ]);
    expect(errors).toEqual([]);
  });

  it("tells systemd a relay or worker started, then that it drains on SIGTERM (runUntilSignalled)", async () => {
    vi.stubEnv("NOTIFY_SOCKET", path);
    let finish: (code: number) => void = () => undefined;
    const drained: string[] = [];
    const finished = new Promise<number>((resolve) => (finish = resolve));
    const running = runUntilSignalled(async () => ({ finished, drain: async (signal: string) => void drained.push(signal) }), pino({ level: "silent" }), "worker");
    await until("started", () => receiver.received.length === 2);
    process.emit("SIGTERM", "SIGTERM");
    await until("draining", () => receiver.received.length === 3);
    finish(0);
    expect(await running).toBe(0);
    vi.unstubAllEnvs();
    expect({ messages: receiver.messages(), drained }).toEqual({ messages: ["STATUS=starting the worker", "READY=1\nSTATUS=running: worker", "STOPPING=1\nSTATUS=draining"], drained: ["SIGTERM"] });
  });

  it("sends RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC in µs), then READY=1", async () => {
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: path });
    const before = process.hrtime.bigint() / 1000n;
    notifier.reloading("reloading the config");
    const after = process.hrtime.bigint() / 1000n;
    notifier.ready("running");
    await until("two datagrams", () => receiver.received.length === 2);
    const [reload, ready] = receiver.messages();
    const match = /^RELOADING=1\nMONOTONIC_USEC=(\d+)\nSTATUS=reloading the config$/.exec(reload ?? "");
    expect(match, reload).not.toBeNull();
    const usec = BigInt(match?.[1] ?? "0");
    expect(usec >= before && usec <= after).toBe(true);
    expect(ready).toBe("READY=1\nSTATUS=running");
  });

  it("pings WATCHDOG=1 every WATCHDOG_USEC / 2 (fake interval, exact count) and stops on close", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "10000000" });
    expect(notifier.watchdogIntervalMs).toBe(5_000);
    vi.advanceTimersByTime(4_999);
    await sleep(50);
    expect(receiver.messages()).toEqual([]);
    vi.advanceTimersByTime(1);
    await until("one ping", () => receiver.received.length === 1);
    vi.advanceTimersByTime(15_000);
    await until("four pings", () => receiver.received.length === 4);
    notifier.close();
    expect(notifier.watchdogIntervalMs).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
    notifier.ready("after close");
    vi.advanceTimersByTime(60_000);
    await sleep(50);
    expect(receiver.messages()).toEqual(["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"]);
  });

  it("pings WATCHDOG=1 on the real clock every WATCHDOG_USEC / 2, and sends nothing after close", async () => {
    const createSocket = vi.spyOn(unixDgram, "createSocket");
    const started = monotonicMs();
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "200000", WATCHDOG_PID: String(process.pid) });
    expect(notifier.watchdogIntervalMs).toBe(100);
    await sleep(1_200 - (monotonicMs() - started));
    notifier.close();
    const closed = monotonicMs() - started;
    const sent = createSocket.mock.calls.length;
    await until("every ping sent", () => receiver.received.length === sent);
    await sleep(300);
    expect(receiver.received.length).toBe(sent);
    expect(receiver.messages()).toEqual(Array(sent).fill("WATCHDOG=1"));
    // The k-th ping leaves k intervals after the start, never sooner (a loaded machine may send it
    // later, and the listener may read it later still): 12 at most in 1.2 s, and most of them.
    expect(sent).toBeLessThanOrEqual(Math.floor(closed / 100));
    expect(sent).toBeGreaterThanOrEqual(5);
    receiver.received.forEach((r, k) => expect(r.at - started, `ping ${k + 1}`).toBeGreaterThanOrEqual((k + 1) * 100 - 2));
  });

  it("does not ping when WATCHDOG_PID names another process, or WATCHDOG_USEC is not a positive number", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000" }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "42" }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "43" }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "0" }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "-5" }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "soon" }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({}, 42)).toBeUndefined();
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "1000000", WATCHDOG_PID: String(process.pid + 1) });
    expect(notifier.watchdogIntervalMs).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
    notifier.ready();
    vi.advanceTimersByTime(10_000);
    await until("one datagram", () => receiver.received.length === 1);
    await sleep(50);
    expect(receiver.messages()).toEqual(["READY=1"]);
  });

  it("is a complete no-op without NOTIFY_SOCKET: no socket, no timer, nothing sent, nothing thrown", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const createSocket = vi.spyOn(unixDgram, "createSocket");
    for (const env of [{ WATCHDOG_USEC: "1000000" }, { NOTIFY_SOCKET: "", WATCHDOG_USEC: "1000000" }]) {
      notifier = createSystemdNotifier(env, { onError: (e) => errors.push(e) });
      expect(notifier.enabled).toBe(false);
      expect(notifier.watchdogIntervalMs).toBeUndefined();
      expect(vi.getTimerCount()).toBe(0);
      notifier.status("starting");
      notifier.ready("running");
      notifier.reloading();
      notifier.stopping("draining");
      vi.advanceTimersByTime(10_000);
      notifier.close();
    }
    await sleep(100);
    expect(createSocket).not.toHaveBeenCalled();
    expect(receiver.messages()).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("opens one socket per message and keeps none open", async () => {
    const createSocket = vi.spyOn(unixDgram, "createSocket");
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: path });
    notifier.ready();
    notifier.status("x");
    await until("two datagrams", () => receiver.received.length === 2);
    expect(createSocket).toHaveBeenCalledTimes(2);
    for (const result of createSocket.mock.results) expect((result.value as { fd: number }).fd).toBe(-1);
  });

  it("reports a socket that is not there through onError and does not throw", () => {
    const missing = join(dir, "missing");
    notifier = createSystemdNotifier({ NOTIFY_SOCKET: missing }, { onError: (e) => errors.push(e) });
    expect(notifier.enabled).toBe(true);
    expect(() => notifier?.ready("running")).not.toThrow();
    expect(errors.map((e) => e.message)).toEqual([`systemd notify: sending to ${missing} failed: ENOENT`]);
  });

  it("does not throw when onError itself throws", () => {
    notifier = createSystemdNotifier(
      { NOTIFY_SOCKET: join(dir, "missing") },
      {
        onError: () => {
          throw new Error("handler broke");
        },
      },
    );
    expect(() => notifier?.stopping()).not.toThrow();
  });

  it("refuses abstract and vsock addresses with one report, and then is a no-op", async () => {
    for (const address of ["@/org/freedesktop/systemd1/notify", "vsock:2:1234"]) {
      notifier = createSystemdNotifier({ NOTIFY_SOCKET: address, WATCHDOG_USEC: "1000" }, { onError: (e) => errors.push(e) });
      expect(notifier.enabled).toBe(false);
      expect(notifier.watchdogIntervalMs).toBeUndefined();
      notifier.ready();
    }
    await sleep(50);
    expect(errors.map((e) => e.message)).toEqual([
      "systemd notify: NOTIFY_SOCKET=@/org/freedesktop/systemd1/notify is not a socket path (abstract and vsock addresses are not supported); not notifying",
      "systemd notify: NOTIFY_SOCKET=vsock:2:1234 is not a socket path (abstract and vsock addresses are not supported); not notifying",
    ]);
    expect(receiver.messages()).toEqual([]);
  });
});
