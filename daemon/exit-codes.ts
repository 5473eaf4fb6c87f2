// The exit codes of every command (sysexits(3)), in one place; the README's Commands table lists
// which command returns which.
import { StateOpenError, createStateDir, DaemonLock } from "../state/open.js";

/** Success. */
export const EX_OK = 0;
/** A command-line usage error: an unknown command or option, a flag or environment variable with a bad value. */
export const EX_USAGE = 64;
/** The input data was incorrect: a state written in another layout. */
export const EX_DATAERR = 65;
/** An input named does not exist: a state directory holding no state, a table `generate` cannot find. */
export const EX_NOINPUT = 66;
/** A service is unavailable: the database `generate` or `import-debezium` reads cannot be reached. */
export const EX_UNAVAILABLE = 69;
/** Permission denied: the daemon refused the API key (`status --url`). */
export const EX_NOPERM = 77;
/** An internal software error: the pipeline failed, a write transaction failed, HTTP cannot listen. */
export const EX_SOFTWARE = 70;
/** An output cannot be created: the state directory (permission denied, a file in its place), an existing generated file. */
export const EX_CANTCREAT = 73;
/** An I/O error on the state (other than permission or a file in its place). */
export const EX_IOERR = 74;
/** Temporary failure, try again later: another daemon holds the state. */
export const EX_TEMPFAIL = 75;
/** A configuration error: an invalid config, a source or destination object missing from the live database. */
export const EX_CONFIG = 78;

/** The exit code for a state that cannot be opened. */
export function stateExitCode(error: StateOpenError): number {
  switch (error.problem) {
    case "missing":
      return EX_NOINPUT;
    case "cannot-create":
      return EX_CANTCREAT;
    case "locked":
      return EX_TEMPFAIL;
    case "layout":
      return EX_DATAERR;
    case "io":
      return EX_IOERR;
  }
}

/**
 * Runs a command body that opens a state: a StateOpenError becomes its message on stderr and its exit
 * code; anything else is rethrown.
 */
export async function withStateErrors(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (!(error instanceof StateOpenError)) throw error;
    process.stderr.write(`error: ${error.message}\n`);
    return stateExitCode(error);
  }
}

/**
 * Runs `body` holding the exclusive lock of a state directory (created when missing), as `run` does:
 * one relay or worker per state; a state in use or unwritable exits with its code and message.
 */
export function withStateLock(dir: string, body: () => Promise<number>): Promise<number> {
  return withStateErrors(async () => {
    createStateDir(dir);
    const lock = DaemonLock.acquire(dir);
    try {
      return await body();
    } finally {
      lock.release();
    }
  });
}
