// The signals of `run` from the first moment: a SIGHUP or SIGTERM that arrives while the daemon
// starts is acted on once it runs (a SIGHUP used to be dropped, so a config changed during start-up
// was never applied); after start, each signal acts at once; a failed start removes the handlers.
import { afterEach, describe, expect, it } from "vitest";
import { runWithSignals, type SignalTarget } from "../../daemon/run.js";

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
