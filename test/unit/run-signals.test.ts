// The signals of `run` from the first moment: a SIGHUP or SIGTERM that arrives while the daemon
// starts is acted on once it runs (a SIGHUP used to be dropped, so a config changed during start-up
// was never applied); after start, each signal acts at once; a failed start removes the handlers. And
// before that, while the executable loads: a SIGHUP to `run`, `relay` or `worker` is caught from the
// executable's first module and handed to the command (it used to end the process).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { catchEarlySighup, LONG_RUNNING_COMMANDS } from "../../daemon/early-signals.js";
import { buildProgram } from "../../daemon/program.js";
import { runWithSignals, type SignalTarget } from "../../daemon/run.js";
import { runUntilSignalled } from "../../daemon/signals.js";

function fakeDaemon() {
  const calls: string[] = [];
  let finish: (code: number) => void = () => undefined;
  const daemon: SignalTarget = {
    drain: async (signal) => void calls.push(`drain ${signal}`),
    reload: async (reason) => void calls.push(`reload ${reason}`),
    finished: new Promise<number>((resolve) => (finish = resolve)),
  };
  return { daemon, calls, finish: (code: number) => finish(code) };
}

function deferred<T>() {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const logger = { info: () => undefined };
const listeners = () => ["SIGTERM", "SIGINT", "SIGHUP"].map((s) => process.listenerCount(s));

describe("run's signals", () => {
  const before = listeners();
  afterEach(() => expect(listeners()).toEqual(before));

  it("reloads once started when a SIGHUP arrived during start-up", async () => {
    const { daemon, calls, finish } = fakeDaemon();
    const started = deferred<SignalTarget>();
    const running = runWithSignals(() => started.promise, logger, () => undefined);
    process.emit("SIGHUP");
    expect(calls).toEqual([]);
    started.resolve(daemon);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(["reload SIGHUP during start-up"]);
    process.emit("SIGHUP");
    expect(calls).toEqual(["reload SIGHUP during start-up", "reload SIGHUP"]);
    finish(0);
    expect(await running).toBe(0);
  });

  it("drains, and does not reload, when a SIGTERM arrived during start-up too", async () => {
    const { daemon, calls, finish } = fakeDaemon();
    const started = deferred<SignalTarget>();
    const running = runWithSignals(() => started.promise, logger, () => undefined);
    process.emit("SIGHUP");
    process.emit("SIGTERM", "SIGTERM");
    started.resolve(daemon);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(["drain SIGTERM"]);
    finish(0);
    expect(await running).toBe(0);
  });

  it("does nothing more when no signal came during start-up", async () => {
    const { daemon, calls, finish } = fakeDaemon();
    const running = runWithSignals(async () => daemon, logger, () => undefined);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([]);
    process.emit("SIGINT", "SIGINT");
    expect(calls).toEqual(["drain SIGINT"]);
    finish(3);
    expect(await running).toBe(3);
  });

  it("returns a failed start's exit code, with its clean-up run and the handlers removed", async () => {
    let failed = 0;
    expect(await runWithSignals(async () => 78, logger, () => void (failed += 1))).toBe(78);
    expect(failed).toBe(1);
  });
});

describe("a SIGHUP while the executable loads", () => {
  const EARLY = new URL("../../daemon/early-signals.ts", import.meta.url).pathname;
  /** A Node process with the given command line that loads early-signals, sends itself a SIGHUP, then reports. */
  const probe = (command: string) =>
    spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", `const early = await import(${JSON.stringify(EARLY)}); process.kill(process.pid, "SIGHUP"); await new Promise((r) => setTimeout(r, 100)); console.log(String(early.takeEarlySighup()), process.listenerCount("SIGHUP"));`, "grouparoo-stream", command], { encoding: "utf8", timeout: 30_000 });

  it.each(["run", "relay", "worker"])("is remembered for %s, and handed over once", (command) => {
    const result = probe(command);
    expect(result.signal).toBeNull();
    expect(result.stdout).toBe("true 0\n");
  });

  it("keeps its default action for the other commands (a hang-up ends them)", () => {
    const result = probe("validate");
    expect(result.signal).toBe("SIGHUP");
    expect(result.stdout).toBe("");
  });

  it("is caught before any other module of the executable is read: cli.ts imports only early-signals statically", () => {
    const source = readFileSync(new URL("../../daemon/cli.ts", import.meta.url), "utf8");
    expect([...source.matchAll(/^import\b.*$/gm)].map((m) => m[0])).toEqual(['import "./early-signals.js";']);
  });

  it("reloads a started daemon when it arrived before run's own handlers", async () => {
    const { daemon, calls, finish } = fakeDaemon();
    catchEarlySighup(["node", "grouparoo-stream", "run"]);
    process.emit("SIGHUP");
    const running = runWithSignals(async () => daemon, logger, () => undefined);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(["reload SIGHUP during start-up"]);
    finish(0);
    expect(await running).toBe(0);
    expect(process.listenerCount("SIGHUP")).toBe(0);
  });

  it("is logged and ignored by a relay or worker, as any SIGHUP is", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
    catchEarlySighup(["node", "grouparoo-stream", "worker"]);
    process.emit("SIGHUP");
    let finish: (code: number) => void = () => undefined;
    const finished = new Promise<number>((resolve) => (finish = resolve));
    const running = runUntilSignalled(async () => ({ finished, drain: async () => undefined }), logger, "worker");
    await new Promise((r) => setImmediate(r));
    finish(0);
    expect(await running).toBe(0);
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(["SIGHUP ignored: a worker does not reload its config; restart it with the new one"]);
    expect(process.listenerCount("SIGHUP")).toBe(0);
  });

  it("names the commands that run until signalled, and the program has no option before its command", () => {
    const program = buildProgram();
    // argv[2] is the command only while the program takes no option of its own but --version and --help.
    expect(program.options.map((o) => o.long)).toEqual(["--version"]);
    const names = program.commands.map((c) => c.name());
    for (const command of LONG_RUNNING_COMMANDS) expect(names).toContain(command);
    expect([...LONG_RUNNING_COMMANDS].sort()).toEqual(["relay", "run", "worker"]);
  });
});
