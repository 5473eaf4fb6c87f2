// The open-file limit, checked before a long-running command loads anything else. Node raises its soft
// limit to the hard one at start; below a few dozen descriptors it cannot even load the program's own
// modules (a raw EMFILE stack), and a little above that the daemon starts but fails later at a random
// place (its HTTP listener, a destination's connection, LMDB), naming EMFILE and not the limit. So
// `run`, `relay` and `worker` refuse a limit below MIN_OPEN_FILES, naming it and where it is set.
// Imported by cli.ts right after early-signals.ts, before the program: it imports nothing else of it.
import { readFileSync } from "node:fs";
import { LONG_RUNNING_COMMANDS } from "./early-signals.js";

/**
 * The fewest open files a long-running command starts with. The example config holds 32 at rest (the
 * state, sockets to Postgres, the HTTP listener, Node's own); connection pools, HTTP clients and
 * Kafka brokers add to that while it runs.
 */
export const MIN_OPEN_FILES = 256;

/** The soft "Max open files" of a /proc/PID/limits text; undefined when absent, "unlimited" as Infinity. */
export function openFilesLimit(limits: string): number | undefined {
  const line = /^Max open files\s+(\S+)/m.exec(limits);
  if (!line) return undefined;
  if (line[1] === "unlimited") return Number.POSITIVE_INFINITY;
  const value = Number(line[1]);
  return Number.isInteger(value) ? value : undefined;
}

/** Why `limit` is too low for `command` to run, or undefined when it is enough. */
export function openFilesProblem(command: string, limit: number | undefined): string | undefined {
  if (limit === undefined || limit >= MIN_OPEN_FILES) return undefined;
  return (
    `the process may open at most ${limit} files; grouparoo-stream ${command} needs at least ${MIN_OPEN_FILES}: ` +
    `raise the open-file limit (LimitNOFILE= under systemd, --ulimit nofile= for a container, ulimit -n in a shell)`
  );
}

/** The limit of this process, from /proc/self/limits (undefined where there is none, e.g. not Linux). */
export function ownOpenFilesLimit(): number | undefined {
  try {
    return openFilesLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * For a long-running command (not its help) under a limit below MIN_OPEN_FILES: the message on stderr
 * and exit 78 (EX_CONFIG; exit-codes.ts is not imported here, it loads the state's modules).
 */
export function refuseLowOpenFileLimit(argv: readonly string[]): void {
  const command = argv[2] ?? "";
  if (!LONG_RUNNING_COMMANDS.has(command) || argv.includes("--help") || argv.includes("-h")) return;
  const problem = openFilesProblem(command, ownOpenFilesLimit());
  if (!problem) return;
  process.stderr.write(`error: ${problem}\n`);
  process.exit(78);
}
