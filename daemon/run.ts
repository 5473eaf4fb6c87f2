// `grouparoo-stream run`: starts the daemon (daemon.ts) and turns signals into its operations: SIGTERM
// and SIGINT drain (/readyz turns 503, sources stop reading, the batch in flight commits and is
// acknowledged, the outbox is flushed up to the drain timeout, the process exits 0), SIGHUP reloads
// the config (an invalid one is refused and the running one kept).
import type { Logger } from "pino";
import { Daemon, type RunOptions } from "./daemon.js";
import { createLogger } from "./logger.js";

export { EX_SOFTWARE, type RunOptions } from "./daemon.js";

export async function runDaemon(options: RunOptions, logger: Logger = createLogger()): Promise<number> {
  const daemon = await Daemon.start(options, logger);
  if (typeof daemon === "number") return daemon;
  const onDrain = (signal: NodeJS.Signals) => void daemon.drain(signal);
  const onReload = () => void daemon.reload("SIGHUP");
  process.on("SIGTERM", onDrain);
  process.on("SIGINT", onDrain);
  process.on("SIGHUP", onReload);
  const code = await daemon.finished;
  process.off("SIGTERM", onDrain);
  process.off("SIGINT", onDrain);
  process.off("SIGHUP", onReload);
  return code;
}
