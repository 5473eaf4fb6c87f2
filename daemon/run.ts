// `grouparoo-stream run`: starts the daemon (daemon.ts) and turns signals into its operations: SIGTERM
// and SIGINT drain (/readyz turns 503, sources stop reading, the batch in flight commits and is
// acknowledged, the outbox is flushed up to the drain timeout, the process exits 0), SIGHUP reloads
// the config (an invalid one is refused and the running one kept).
import type { Logger } from "pino";
import { Daemon, type RunOptions } from "./daemon.js";
import { takeEarlySighup } from "./early-signals.js";
import { createLogger } from "./logger.js";
import { createSystemdNotifier } from "./systemd.js";

export { EX_SOFTWARE, type RunOptions } from "./daemon.js";

export async function runDaemon(options: RunOptions, logger: Logger = createLogger()): Promise<number> {
  const systemd = createSystemdNotifier(process.env, { onError: (error) => logger.warn({ err: error }, "systemd notification failed") });
  return runWithSignals(() => Daemon.start(options, logger, systemd), logger, () => systemd.close());
}

/** What the signals act on once the daemon runs. */
export interface SignalTarget {
  drain(signal: NodeJS.Signals): Promise<void>;
  reload(reason: string): Promise<unknown>;
  /** Resolves with the exit code. */
  finished: Promise<number>;
}

/**
 * Runs `start` with the signals handled from the first moment: a SIGTERM or SIGINT during start-up
 * drains once the daemon runs, and a SIGHUP during start-up (the config may have changed after it was
 * read) reloads once it runs. `failed` runs when start returned an exit code instead of a daemon.
 */
export async function runWithSignals(start: () => Promise<SignalTarget | number>, logger: Pick<Logger, "info">, failed: () => void): Promise<number> {
  let stopAsked: NodeJS.Signals | undefined;
  let reloadAsked = false;
  let onDrain = (signal: NodeJS.Signals) => void (stopAsked = signal);
  let onReload = () => void (reloadAsked = true);
  const drainHandler = (signal: NodeJS.Signals) => onDrain(signal);
  const reloadHandler = () => onReload();
  process.on("SIGTERM", drainHandler);
  process.on("SIGINT", drainHandler);
  process.on("SIGHUP", reloadHandler);
  // One that arrived while the command line loaded counts as one during start-up.
  if (takeEarlySighup()) reloadAsked = true;
  const off = () => {
    process.off("SIGTERM", drainHandler);
    process.off("SIGINT", drainHandler);
    process.off("SIGHUP", reloadHandler);
  };
  const daemon = await start();
  if (typeof daemon === "number") {
    off();
    failed();
    return daemon;
  }
  onDrain = (signal) => void daemon.drain(signal);
  onReload = () => void daemon.reload("SIGHUP");
  if (stopAsked) onDrain(stopAsked);
  else if (reloadAsked) {
    logger.info({ signal: "SIGHUP" }, "a SIGHUP arrived while the daemon started: reloading the config now");
    void daemon.reload("SIGHUP during start-up");
  }
  const code = await daemon.finished;
  off();
  return code;
}
