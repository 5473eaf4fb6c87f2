// Opening the state directory safely: what exists, what may be created, and who holds it.
//
// The daemon lock. One `run` per state: the daemon takes an exclusive BSD `flock(2)` on
// `<state>/daemon.lock` (through `fs-ext`, a small native addon built by npm ci) before LMDB is
// opened, and holds it for the life of the process. The kernel releases a flock when the last
// descriptor of its open file goes, so a daemon killed with SIGKILL (or crashing) never leaves a
// stale lock: the next start takes it at once. The file keeps the holder's pid, for the error a
// second daemon prints. Why not the alternatives: `proper-lockfile` and `lockfile` use mkdir/mtime
// conventions that a dead process leaves behind (stale until a timeout); a pid file alone cannot tell
// a live holder from a recycled pid; POSIX `fcntl` locks (os-lock) are dropped when the process closes
// any descriptor of the file; LMDB's own lock.mdb lets several processes share an environment on
// purpose (that is how `retry-exports` and `rebuild` write beside a running daemon), so it cannot say
// "one daemon". Node opens files with O_CLOEXEC, so a child process never inherits the lock.
import { closeSync, constants, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, statfsSync, statSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { dirname, join } from "node:path";

/** What went wrong opening a state directory; the daemon and the commands map it to an exit code. */
export type StateProblem = "missing" | "cannot-create" | "io" | "locked" | "layout";

export class StateOpenError extends Error {
  readonly code = "STATE_OPEN_FAILED";
  constructor(
    message: string,
    readonly problem: StateProblem,
    /** For `locked`: the pid written by the daemon that holds the state, when it could be read. */
    readonly holderPid?: number,
  ) {
    super(message);
    this.name = "StateOpenError";
  }
}

/** The lock file inside a state directory. */
export const LOCK_FILE = "daemon.lock";

/**
 * The LMDB map's size: address space reserved once, not memory or disk (the file grows as data does,
 * and only pages read are resident). lmdb-js otherwise starts small and, as the state grows, maps the
 * file again at twice the size, keeping the earlier maps: a page read through two maps is resident in
 * both and counts twice in the process's RSS (at 1,000,000 changes, 298 MiB resident of a 202 MiB file).
 * A state that outgrows it still grows the map.
 */
export const MAP_SIZE = 2 ** 36;

/** The file marking a relay's state (state/relay.ts), which no daemon command may open as its own. */
export const RELAY_MARKER = "relay.state";

const CANNOT_CREATE = new Set(["EACCES", "EPERM", "EEXIST", "ENOTDIR", "EROFS", "ENAMETOOLONG", "ELOOP"]);

/** A file-system error met while opening `path`, as a StateOpenError naming the path and the cause. */
export function stateFsError(error: unknown, path: string): StateOpenError {
  if (error instanceof StateOpenError) return error;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  // lmdb-js gives a system error's errno as a number (28), Node's fs its name ("ENOSPC").
  const text = typeof code === "string" ? code : typeof code === "number" ? errnoName(code) : /permission denied/i.test(message) ? "EACCES" : undefined;
  const cause =
    text === "ENOSPC" || text === "EDQUOT"
      ? `no space left on its file system (${text}: ${message})`
      : text === "EACCES" || text === "EPERM"
      ? "permission denied (the daemon's user must be able to create and write it)"
      : text === "EEXIST" || text === "ENOTDIR"
        ? "it (or a parent of it) is a file, not a directory"
        : text === "EROFS"
          ? "the file system is read-only"
          : message;
  return new StateOpenError(`cannot open the state directory ${path}: ${cause}`, text !== undefined && CANNOT_CREATE.has(text) ? "cannot-create" : "io");
}

/** Bytes as a short text: 512 B, 12.3 KiB, 8.0 MiB, 1.5 GiB. */
function sizeText(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
}

/** The errno name (EIO, ENOSPC) of a numeric system error code, if it is one. */
function errnoName(code: number): string | undefined {
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === code) return name;
  return undefined;
}

/** A failed write transaction: its message names the state; `why` is the cause alone. */
export type StateWriteError = Error & { code: string | undefined; why: string };

/**
 * Why a write transaction on the state at `path` failed, as one message naming the state, the error
 * and its likely cause. lmdb-js rejects a failed commit with "Commit failed (see commitError for
 * details)" and the real error in a second promise (`commitError`), which nothing else handles: left
 * alone, its rejection ends the process (exit 1) before the daemon can say what happened; it is
 * awaited here. LMDB turns a short write (a file system filling up) into EIO, and lmdb-js prefixes
 * its message with whatever its last error text was ("Attempting to setup locks after open"), so the
 * code is named from the errno instead, with the space left on the state's file system.
 */
export async function stateWriteError(error: unknown, path: string): Promise<StateWriteError> {
  let cause: unknown = error;
  const pending = (error as { commitError?: unknown } | undefined)?.commitError;
  if (pending !== undefined && typeof (pending as PromiseLike<unknown>).then === "function") {
    cause = await (pending as Promise<unknown>).then(
      () => error,
      (reason: unknown) => reason,
    );
  }
  const code = (cause as { code?: unknown } | undefined)?.code;
  const name = typeof code === "number" ? errnoName(code) : typeof code === "string" ? code : undefined;
  // The space left matters for a system error only (not for a bug in the transaction's body).
  let space: { free: number; total: number } | undefined;
  try {
    const fs = name === undefined ? undefined : statfsSync(path);
    space = fs && { free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
  } catch {
    space = undefined;
  }
  const spaceText = space === undefined ? "" : ` (its file system has ${sizeText(space.free)} free of ${sizeText(space.total)})`;
  const message = cause instanceof Error ? cause.message : String(cause);
  let why: string;
  if (name === "ENOSPC" || name === "EDQUOT") why = `no space left on the state's file system (${name})`;
  else if (name === "EIO") why = "an I/O error (EIO; LMDB reports a short write so: the state's file system is full, or its disk failed)";
  else if (name === "EROFS") why = "the state's file system is read-only (EROFS)";
  else if (name !== undefined) why = `${message.replace(/^[^:]*error: /i, "")} (${name})`;
  else why = message;
  return Object.assign(new Error(`a write transaction on the state ${path} failed: ${why}${spaceText}; nothing of it was written, and the state refuses further writes until the daemon restarts`), { code: name, why: `${why}${spaceText}` });
}

/** lmdb-js's message for a failed commit, whose real error is in `commitError`. */
const LMDB_COMMIT_FAILED = "Commit failed (see commitError for details)";

/**
 * lmdb-js starts each batch of writes of an event turn with a write of its own whose promise nobody
 * is handed (write.js, `writeBatchStart`): when the commit fails (a full disk), that promise rejects
 * with nobody to handle it, and Node ends the process (exit 1, a stack on stderr) before the daemon
 * can name the failure and exit 70 (the transactions awaited get the same failure, and report it).
 * This listener takes exactly those rejections (the error lmdb-js made for a failed commit), and
 * throws any other, as Node would without a listener (unless another listener is there to judge it).
 */
export function ignoreOrphanedCommitRejections(): void {
  const marker = Symbol.for("grouparoo-stream.lmdb-commit-rejections");
  const holder = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (holder[marker]) return;
  holder[marker] = true;
  process.on("unhandledRejection", (reason) => {
    const commitError = (reason as { commitError?: unknown } | undefined)?.commitError;
    if (reason instanceof Error && reason.message === LMDB_COMMIT_FAILED && commitError !== undefined) {
      void Promise.resolve(commitError).catch(() => undefined);
      return;
    }
    // Another listener (a test runner) decides for the rest; alone, this one does what Node does.
    if (process.listenerCount("unhandledRejection") > 1) return;
    throw reason;
  });
}

/**
 * Creates the state directory if missing (the daemon's own open), readable by its owner only (0700,
 * as systemd's StateDirectoryMode= and the container's volume): it holds the records' values. Its
 * missing parents are made with the usual mode; a directory that exists keeps its own.
 */
export function createStateDir(path: string): void {
  try {
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      try {
        mkdirSync(path, { mode: 0o700 });
      } catch (error) {
        // Made meanwhile by another process: the checks below judge it.
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    }
    if (!statSync(path).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
  } catch (error) {
    throw stateFsError(error, path);
  }
}

/**
 * The partitions' states in a worker's --state directory (`<model>/<partition>/data.mdb`), as
 * `model/partition`, sorted; none in any other directory (a daemon's state, a partition's own).
 */
export function workerPartitions(path: string): string[] {
  const found: string[] = [];
  const directories = (dir: string): string[] => {
    try {
      return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return [];
    }
  };
  if (existsSync(join(path, "data.mdb"))) return found;
  for (const model of directories(path)) {
    for (const partition of directories(join(path, model))) {
      if (/^\d+$/.test(partition) && existsSync(join(path, model, partition, "data.mdb"))) found.push(`${model}/${partition}`);
    }
  }
  return found.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/**
 * Refuses a worker's --state directory (it holds no state of its own, only its partitions' under
 * it) to the daemon's commands, naming where the partitions' states are: `run` would make a daemon's
 * state in it, the other commands found "no state" there.
 */
export function refuseWorkerDirectory(path: string): void {
  const partitions = workerPartitions(path);
  if (partitions.length === 0) return;
  const shown = partitions.slice(0, 3).map((p) => join(path, p));
  const named = `${shown.join(", ")}${partitions.length > shown.length ? `, ... (${partitions.length} partitions)` : ""}`;
  throw new StateOpenError(
    `the directory ${path} is a grouparoo-stream worker's --state, not a daemon's state: each partition it owns has a state of its own under it (${named}); status, runs and dead-letters read one of those (only the worker writes them) (nothing was changed)`,
    "layout",
  );
}

/** Refuses a path that holds no state (commands that need one never create it). */
export function requireExistingState(path: string): void {
  let directory: boolean | undefined;
  try {
    directory = statSync(path).isDirectory();
  } catch {
    directory = undefined;
  }
  if (directory === false) throw new StateOpenError(`no state at ${path}: it is a file, not a directory (check --state: the state directory, not a file in it; nothing was changed)`, "missing");
  if (directory === undefined) throw new StateOpenError(`no state at ${path}: the directory does not exist (check --state; nothing was created)`, "missing");
  if (!existsSync(join(path, "data.mdb"))) throw new StateOpenError(`no state at ${path}: the directory holds no LMDB state (data.mdb) (check --state; nothing was created)`, "missing");
}

interface FsExt {
  flockSync(fd: number, flags: "ex" | "exnb" | "sh" | "shnb" | "un"): void;
}

let fsExt: FsExt | undefined;
const loadFsExt = (): FsExt => (fsExt ??= createRequire(import.meta.url)("fs-ext") as FsExt);

/** The exclusive daemon lock on a state directory, held until release() or the process's end. */
export class DaemonLock {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Takes the lock without waiting; throws StateOpenError("locked") naming the holder's pid. */
  static acquire(stateDir: string): DaemonLock {
    const path = join(stateDir, LOCK_FILE);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    } catch (error) {
      throw stateFsError(error, stateDir);
    }
    try {
      loadFsExt().flockSync(fd, "exnb");
    } catch (error) {
      closeSync(fd);
      const code = (error as { code?: string }).code;
      if (code === "EAGAIN" || code === "EWOULDBLOCK") {
        const holder = readHolder(path);
        throw new StateOpenError(
          `the state ${stateDir} is in use by another grouparoo-stream daemon${holder === undefined ? "" : ` (pid ${holder})`}: one daemon per state; stop it first, or use another --state`,
          "locked",
          holder,
        );
      }
      throw stateFsError(error, stateDir);
    }
    try {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    } catch {
      // The pid is for the message only; the lock itself is held.
    }
    return new DaemonLock(path, fd);
  }

  /** Releases the lock (the kernel does it anyway when the process ends). */
  release(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      loadFsExt().flockSync(fd, "un");
    } finally {
      closeSync(fd);
    }
  }
}

/** The pid a lock file names, if it holds one. */
export function readHolder(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sorts after every string (and every number), so [a, b, KEY_END] closes the range of keys that start with
 * [a, b]. Keys hold strings as UTF-8: U+FFFF (EF BF BF) sorts before every character outside the Basic
 * Multilingual Plane (F0 to F4), so an id starting with an emoji fell outside ranges closed by
 * "\uffff\uffff". U+10FFFF is the last code point (F4 8F BF BF); only an id starting with two of these
 * noncharacters could sort after it.
 */
export const KEY_END = "\u{10FFFF}\u{10FFFF}";
