// Signals for the relay and worker modes (README, "Relay and workers"): SIGTERM and SIGINT drain
// (the batch in flight is published or committed, positions acknowledged, the process exits 0);
// SIGHUP is logged and ignored (a config change means restarting the process with the new config).
// Under a Type=notify unit they tell systemd READY=1 once started (and ping its watchdog), STOPPING=1
// as they drain, like `run` (daemon/systemd.ts).
import type { Logger } from "pino";
import { takeEarlySighup } from "./early-signals.js";
import { createSystemdNotifier } from "./systemd.js";

export interface Drainable {
  drain(signal: string): Promise<void>;
  /** Resolves with the exit code once stopped. */
  readonly finished: Promise<number>;
}

/**
 * Waits for `step` (its failure counts as finished) at most `ms`: true when it finished in time. A stop
 * bounds each step that waits on a server with it (kafkajs retries without end while a broker is down).
 */
export async function finishedWithin(step: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([Promise.resolve(step).then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runUntilSignalled(start: () => Promise<Drainable | number>, logger: Logger, mode: string): Promise<number> {
  let stopAsked: NodeJS.Signals | undefined;
  let onDrain = (signal: NodeJS.Signals) => void (stopAsked = signal);
  const drainHandler = (signal: NodeJS.Signals) => onDrain(signal);
  const reloadHandler = () => logger.warn({ mode }, `SIGHUP ignored: a ${mode} does not reload its config; restart it with the new one`);
  process.on("SIGTERM", drainHandler);
  process.on("SIGINT", drainHandler);
  process.on("SIGHUP", reloadHandler);
  if (takeEarlySighup()) reloadHandler();
  const systemd = createSystemdNotifier(process.env, { onError: (error) => logger.warn({ err: error }, "systemd notification failed") });
  try {
    systemd.status(`starting the ${mode}`);
    const running = await start();
    if (typeof running === "number") return running;
    systemd.ready(`running: ${mode}`);
    onDrain = (signal) => {
      systemd.stopping("draining");
      void running.drain(signal);
    };
    if (stopAsked) onDrain(stopAsked);
    return await running.finished;
  } finally {
    systemd.close();
    process.off("SIGTERM", drainHandler);
    process.off("SIGINT", drainHandler);
    process.off("SIGHUP", reloadHandler);
  }
}
