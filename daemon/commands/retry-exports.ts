// `grouparoo-stream retry-exports`: for exports dead-lettered for a destination (within a time range),
// queues a fresh export of each record as it is now (never the stale letter itself); a running daemon
// picks them up within a second, a stopped one when it starts. The daemon's API does the same work
// (streams/operations.ts retryExports) through its own pipeline.
import { Store } from "../../state/store.js";
import { retryExports } from "../../streams/operations.js";
import { loadValidConfig } from "../config/validate.js";
import { EX_CONFIG, EX_USAGE, withStateErrors } from "../exit-codes.js";

export interface RetryExportsOptions {
  config: string;
  state: string;
  destination: string;
  plugin?: string[];
  since?: string;
  until?: string;
}

function instant(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(ms)) throw new Error(`--${name} must be an ISO-8601 time or epoch milliseconds (got "${value}")`);
  return ms;
}

export async function retryExportsCommand(options: RetryExportsOptions): Promise<number> {
  const loaded = await loadValidConfig(options.config, options.plugin ?? []);
  if (typeof loaded === "number") return loaded;
  if (!loaded.config.destinations.some((d) => d.id === options.destination)) {
    process.stderr.write(`error: no destination "${options.destination}" in ${options.config}\n`);
    return EX_CONFIG;
  }
  let from: number;
  let to: number;
  try {
    from = instant(options.since, 0, "since");
    to = instant(options.until, Number.MAX_SAFE_INTEGER, "until");
    // As POST /api/v1/exports/retry answers it (400): a range that holds nothing is a mistake, not "re-queued 0".
    if (from > to) throw new Error(`--since ${options.since ?? ""} is after --until ${options.until ?? ""}: no dead letter is in that range`);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return EX_USAGE;
  }
  const destination = loaded.domain.destinations.get(options.destination);
  if (!destination) return EX_CONFIG;
  // Beside a running daemon too: LMDB's own multi-process transactions; an existing state only.
  return withStateErrors(async () => {
    const store = Store.open(options.state, { create: false });
    try {
      const count = await retryExports(store, destination, (letter) => letter.at >= from && letter.at <= to);
      process.stdout.write(`re-queued ${count} export${count === 1 ? "" : "s"} for destination ${options.destination}\n`);
      return 0;
    } finally {
      await store.close();
    }
  });
}
