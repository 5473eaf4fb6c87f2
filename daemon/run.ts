// `grouparoo-stream run`: starts the daemon (daemon.ts) and turns signals into its operations: SIGTERM
// and SIGINT drain (/readyz turns 503, sources stop reading, the batch in flight commits and is
// acknowledged, the outbox is flushed up to the drain timeout, the process exits 0), SIGHUP reloads
// the config (an invalid one is refused and the running one kept).
import type { Logger } from "pino";
import { Daemon, type RunOptions } from "./daemon.js";
import { createLogger } from "./logger.js";
import { createSystemdNotifier } from "./systemd.js";

export { EX_SOFTWARE, type RunOptions } from "./daemon.js";

export async function runDaemon(options: RunOptions, logger: Logger = createLogger()): Promise<number> {
  const systemd = createSystemdNotifier(process.env, { onError: (error) => logger.warn({ err: error }, "systemd notification failed") });
  // Signals are handled from the start: a stop during start-up still drains once the daemon runs.
  let stopAsked: NodeJS.Signals | undefined;
  let onDrain = (signal: NodeJS.Signals) => void (stopAsked = signal);
  let onReload = () => undefined as void;
  const drainHandler = (signal: NodeJS.Signals) => onDrain(signal);
  const reloadHandler = () => onReload();
  process.on("SIGTERM", drainHandler);
  process.on("SIGINT", drainHandler);
  process.on("SIGHUP", reloadHandler);
  const daemon = await Daemon.start(options, logger, systemd);
  if (typeof daemon === "number") {
    process.off("SIGTERM", drainHandler);
    process.off("SIGINT", drainHandler);
    process.off("SIGHUP", reloadHandler);
    systemd.close();
    return daemon;
  }
  onDrain = (signal) => void daemon.drain(signal);
  onReload = () => void daemon.reload("SIGHUP");
  if (stopAsked) onDrain(stopAsked);
  const code = await daemon.finished;
  process.off("SIGTERM", drainHandler);
  process.off("SIGINT", drainHandler);
  process.off("SIGHUP", reloadHandler);
  return code;
}
