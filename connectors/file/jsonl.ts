// jsonl-file destination: one JSON line per export, appended to a file under the file app's
// directory and fsynced once per batch before the batch is acknowledged. Its directory is made at the
// first write (not when the config is loaded: a reload must not fail on it); a write the file system
// refuses for good (a file where the directory should be, permission denied, read-only, full) is the
// destination's problem, named on /readyz until a write succeeds, and its exports are retried.
import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, writeSync } from "node:fs";
import { access, stat } from "node:fs/promises";
import { constants } from "node:fs";
import { dirname, resolve } from "node:path";
import { Type, type Static } from "@sinclair/typebox";
import type { AppConfig, DestinationConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import { DeliveryError, type DeliverableExport, type DestinationComponent, type DestinationConnector, type ExportResult, type LiveProblem } from "../types.js";
import type { FileAppOptions } from "./app.js";

export const JsonlFileOptions = Type.Object(
  { path: Type.String({ minLength: 1, description: "File (relative to the file app's directory) one export per line is appended to." }) },
  { additionalProperties: false },
);
type JsonlFileOptions = Static<typeof JsonlFileOptions>;

/** File system errors that stay until someone fixes the file system (the others may pass: retried, not named). */
const PERMANENT_FS_ERRORS: ReadonlySet<string> = new Set(["ENOTDIR", "EISDIR", "EEXIST", "EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ELOOP", "ENAMETOOLONG"]);

/** Where a jsonl-file destination writes: the app's directory joined with its path. */
export function jsonlPathOf(destination: Located<DestinationConfig>, app: Located<AppConfig>): string {
  return resolve((app.options as FileAppOptions).directory, (destination.options as JsonlFileOptions).path);
}

export class JsonlFileDestination implements DestinationConnector {
  /** Its directory exists as far as it knows (made at the first write, and again after a failed one). */
  private directoryMade = false;
  /** A permanent problem of the file system, until a write succeeds. */
  private failing: string | null = null;

  constructor(
    readonly destinationId: string,
    private readonly path: string,
  ) {}

  async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
    const text = batch.map((e) => `${JSON.stringify(e)}\n`).join("");
    try {
      if (!this.directoryMade) mkdirSync(dirname(this.path), { recursive: true });
      this.directoryMade = true;
      const fd = openSync(this.path, "a");
      const size = fstatSync(fd).size;
      try {
        // A write may take part of the bytes (a disk nearly full): the rest follows until all are
        // written; one that fails takes the batch's part back out, so no half line stays.
        const bytes = Buffer.from(text, "utf8");
        try {
          for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written, bytes.length - written);
          fsyncSync(fd);
        } catch (error) {
          try {
            ftruncateSync(fd, size);
          } catch {
            // The error that matters is the write's.
          }
          throw error;
        }
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      this.directoryMade = false;
      const code = (error as NodeJS.ErrnoException).code ?? "";
      const reason = `cannot write ${this.path}: ${(error as Error).message}`;
      this.failing = PERMANENT_FS_ERRORS.has(code) ? reason : null;
      throw new DeliveryError(reason, true);
    }
    this.failing = null;
    return batch.map((e) => ({ seq: e.seq, status: "ok" }));
  }

  ready(): boolean {
    return this.failing === null;
  }

  problem(): string | null {
    return this.failing;
  }

  async stop(): Promise<void> {}
}

/**
 * Whether the destination's file can be written, without making anything (validate --connect runs it
 * too): its directory, or the nearest part of it that exists, is a writable directory, and the file,
 * if there, is a writable file.
 */
export async function checkJsonlFileDestination(destination: Located<DestinationConfig>, app: Located<AppConfig>): Promise<LiveProblem[]> {
  const path = jsonlPathOf(destination, app);
  const problem = (message: string): LiveProblem[] => [{ objectClass: "destination", id: destination.id, message, permanent: true }];
  const kindOf = async (at: string): Promise<"directory" | "file" | "missing"> => {
    try {
      return (await stat(at)).isDirectory() ? "directory" : "file";
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // ENOTDIR: a part of it is a file; that part is found on the way up.
      if (code === "ENOENT" || code === "ENOTDIR") return "missing";
      throw error;
    }
  };
  // Why it may not be written: permission denied, or a read-only file system (a read-only mount, or
  // the systemd unit's ProtectSystem=strict outside its ReadWritePaths=), which no chmod mends.
  const refused = async (at: string, mode: number): Promise<string | undefined> =>
    access(at, mode).then(
      () => undefined,
      (error: NodeJS.ErrnoException) => (error.code === "EROFS" ? "read-only file system" : "permission denied"),
    );
  try {
    const file = await kindOf(path);
    if (file === "directory") return problem(`cannot write ${path}: it is a directory`);
    if (file === "file") {
      const why = await refused(path, constants.W_OK);
      return why === undefined ? [] : problem(`cannot write ${path}: ${why}`);
    }
    const directory = dirname(path);
    // The nearest part of the directory that exists must be a directory the daemon may write into.
    let at = directory;
    for (;;) {
      const kind = await kindOf(at);
      if (kind === "file") return problem(`cannot write ${path}: ${at} is a file, not a directory${at === directory ? "" : ` (the directory ${directory} cannot be created)`}`);
      if (kind === "directory") break;
      const parent = dirname(at);
      if (parent === at) break;
      at = parent;
    }
    const why = await refused(at, constants.W_OK | constants.X_OK);
    if (why !== undefined) {
      return problem(at === directory ? `cannot write ${path}: ${why} on the directory ${directory}` : `cannot write ${path}: the directory ${directory} cannot be created (${why} on ${at})`);
    }
    return [];
  } catch (error) {
    return problem(`cannot write ${path}: ${(error as Error).message}`);
  }
}

export const jsonlFileDestination: DestinationComponent = {
  type: "jsonl-file",
  appType: "file",
  options: JsonlFileOptions,
  metrics: [],
  create(destination, app) {
    return new JsonlFileDestination(destination.id, jsonlPathOf(destination, app));
  },
  checkLive: checkJsonlFileDestination,
};
