// The `grouparoo-stream` command line (started by cli.ts): parses arguments and dispatches to the
// daemon's commands.
import { Command, CommanderError } from "commander";
import { DEFAULT_PIPELINE_OPTIONS } from "../streams/pipeline.js";
import type { RebuildOptions } from "./commands/runs.js";
import type { StatusOptions } from "./commands/status.js";
import { EX_SOFTWARE, EX_USAGE } from "./exit-codes.js";
import { API_KEY_ENV, apiFlagProblems, codeGenerationProblem, deliveryFlags, environmentProblems, refuseUsage, hostPort, httpUrl, instant, integer, list, milliseconds, oneOf, path, postgresUrl } from "./flags.js";
import { readPackageInfo } from "./package-info.js";
import { scaleOutCommands } from "./scale-out-commands.js";

// Every command's module is imported when the command runs: a start compiles only what it uses.
const collect = (value: string, previous: string[]) => [...previous, value];

export function buildProgram(): Command {
  const info = readPackageInfo();
  const program = new Command();
  program
    .name("grouparoo-stream")
    .description(info.description)
    .version(info.version, "-V, --version", "print the version and exit")
    .showHelpAfterError("(run with --help for the usage)")
    .showSuggestionAfterError()
    // Usage errors (an unknown command or option, a missing or invalid flag) exit 64 (EX_USAGE), not
    // commander's 1; --help and --version exit 0. Subcommands inherit this.
    .exitOverride((error) => {
      throw error;
    })
    // Before any command's action (and before its own checks): a Node that refuses to compile code from
    // text cannot run one. Help and the version print without an action.
    .hook("preAction", () => {
      const problem = codeGenerationProblem();
      refuseUsage(problem ? [problem] : []);
    });

  program
    .command("validate")
    .description("check a config file or directory; exit 0 when valid, 78 (EX_CONFIG) with every error otherwise")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .option("--json", "print the result as JSON on stdout")
    .option("--connect", "also check, against the live systems, that every source's table or query and every destination's table exists and is readable")
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .action(async (options: { config: string; json?: boolean; connect?: boolean; plugin: string[] }) => {
      process.exitCode = await (await import("./commands/validate.js")).validateCommand(options);
    });

  const run = program
    .command("run")
    .description("run the daemon: stream changes from the configured sources into records, groups and the outbox")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .requiredOption("-s, --state <dir>", "directory of the LMDB state (created if missing; one daemon per state)", path)
    .option("--http <host:port>", "where /metrics, /healthz, /readyz, the API (/api/v1) and the status page (/) listen", hostPort, "127.0.0.1:9464")
    .option("--api-insecure", "serve the API and the status page without keys when the config has no apiKey objects (only with --http on a loopback address)")
    .option("--metrics-auth", "put /metrics behind an API key (one with read on the metrics topic; Prometheus sends it as a bearer token)")
    .option("--api-nice <n>", "the API thread's nice value, 0-19 (Linux): above 0, API reads yield the CPU to the stream on a busy machine", integer(0, 19), 0)
    .option("--max-batch-size <n>", "most changes per batch (one LMDB transaction), 1 or more", integer(1), DEFAULT_PIPELINE_OPTIONS.maxBatchSize)
    .option("--max-batch-delay-ms <ms>", "longest a change waits for its batch while the core is idle", milliseconds(0), DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs);
  deliveryFlags(run, "destination", "the sources pause")
    .option("--delivery-rate <n>", "exports per second per destination (0 = unlimited)", integer(0), 0)
    .option("--plugin <package>", "load a plugin package: an npm package name (resolved from the working directory) or a path (repeatable)", collect, [])
    .option("--watch-config", "reload the config when a file of it changes (as on SIGHUP)")
    .hook("preAction", (command) => {
      // The environment the daemon reads is checked before anything starts, like its flags.
      refuseUsage([...environmentProblems(process.env), ...apiFlagProblems(command.opts<{ http: string; apiInsecure?: boolean }>())]);
    })
    .action(
      async (options: {
        config: string;
        state: string;
        http: string;
        maxBatchSize: number;
        maxBatchDelayMs: number;
        drainTimeoutMs: number;
        outboxBound: number;
        deliveryBatchSize: number;
        deliveryConcurrency: number;
        deliveryRate: number;
        maxAttempts: number;
        maxBackoffMs: number;
        plugin: string[];
        watchConfig?: boolean;
        apiInsecure?: boolean;
        metricsAuth?: boolean;
        apiNice: number;
      }) => {
        // Exit explicitly: a connection a failed source left open must not keep the process alive.
        process.exit(
          await (await import("./run.js")).runDaemon({
          ...options,
          plugins: options.plugin,
          delivery: {
            batchSize: options.deliveryBatchSize,
            concurrency: options.deliveryConcurrency,
            ratePerSecond: options.deliveryRate,
            maxAttempts: options.maxAttempts,
            maxBackoffMs: options.maxBackoffMs,
          },
          }),
        );
      },
    );

  scaleOutCommands(program);

  program
    .command("retry-exports")
    .description("put dead-lettered exports of a destination back into its outbox (by the time they were dead-lettered)")
    .requiredOption("-c, --config <path>", "config file or directory")
    .requiredOption("-s, --state <dir>", "directory of an existing LMDB state (beside a running daemon too)", path)
    .requiredOption("-d, --destination <id>", "destination id")
    .option("--since <time>", "only exports dead-lettered at or after this time (ISO-8601 or epoch ms)", instant)
    .option("--until <time>", "only exports dead-lettered at or before this time (ISO-8601 or epoch ms)", instant)
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .action(async (options: { config: string; state: string; destination: string; since?: string; until?: string; plugin: string[] }) => {
      process.exitCode = await (await import("./commands/retry-exports.js")).retryExportsCommand(options);
    });

  program
    .command("runs")
    .description("list the Runs of a state (the work config changes and rebuild ask for): kind, target, state, progress, start and end")
    .requiredOption("-s, --state <dir>", "directory of an existing LMDB state (read-only, beside a running daemon too)", path)
    .option("--json", "print them as JSON")
    .action(async (options: { state: string; json?: boolean }) => {
      process.exitCode = await (await import("./commands/runs.js")).runsCommand(options);
    });

  program
    .command("status")
    .description("the status of a running daemon (--url: sources, destinations, groups, Runs, version, uptime) or of a state (--state: positions, records, group sizes, outbox depths, dead letters and Runs, read-only, beside a running daemon too)")
    .option("-s, --state <dir>", "directory of an existing LMDB state", path)
    .option("-u, --url <url>", "base URL of a running daemon's HTTP listener (e.g. http://127.0.0.1:9464)", httpUrl)
    .option("-k, --api-key <key>", `API key for --url (default: the ${API_KEY_ENV} environment variable, which keeps it out of the process list)`)
    .option("--json", "print it as JSON")
    .action(async (options: StatusOptions) => {
      process.exitCode = await (await import("./commands/status.js")).statusCommand(options);
    });

  program
    .command("dead-letters")
    .description("list the dead letters of a state with their reasons: changes and messages sources set aside, exports destinations rejected (read-only, beside a running daemon too)")
    .requiredOption("-s, --state <dir>", "directory of an existing LMDB state", path)
    .option("--kind <kind>", "only this kind: change (what sources set aside, with message), message, export", oneOf(["change", "message", "export"] as const))
    .option("--limit <n>", "at most this many, oldest first", integer(1))
    .option("--json", "print them as JSON")
    .action(async (options: { state: string; kind?: "change" | "message" | "export"; limit?: number; json?: boolean }) => {
      process.exitCode = await (await import("./commands/dead-letters.js")).deadLettersCommand(options);
    });

  program
    .command("rebuild")
    .description("ask for Runs that rebuild part of the state from the source data; a running daemon starts them within a second")
    .requiredOption("-c, --config <path>", "config file or directory")
    .requiredOption("-s, --state <dir>", "directory of an existing LMDB state (beside a running daemon too)", path)
    .option("--property <id>", "recompute a property (from the stored rows, or by reading its primary source again)")
    .option("--source <id>", "read a source's rows again")
    .option("--group <id>", "evaluate a group over every record again")
    .option("--destination <id>", "plan every record's export to a destination again")
    .option("--all", "read every source again, then every group and destination")
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .action(async (options: RebuildOptions) => {
      process.exitCode = await (await import("./commands/runs.js")).rebuildCommand(options);
    });

  program
    .command("generate")
    .description("write config files (app, models, sources, properties) from a Postgres database's tables")
    .requiredOption("-d, --database-url <url>", "postgres:// connection string of the database to read", postgresUrl)
    .option("-t, --tables <list>", "comma-separated tables (table or schema.table)", list)
    .option("--all", "every table of --schema")
    .option("-s, --schema <name>", "schema of unqualified table names", "public")
    .option("-o, --out <dir>", "directory the files are written to", "config")
    .option("--app-id <id>", "id of the generated postgres app", "postgres")
    .option("-f, --force", "overwrite existing files")
    .action(async (options: { databaseUrl: string; tables?: string; all?: boolean; schema: string; out: string; appId: string; force?: boolean }) => {
      process.exitCode = await (await import("./commands/generate.js")).generateCommand(options);
    });

  program
    .command("import-debezium")
    .description("turn a Debezium Postgres connector config (JSON) into config files, reading the captured tables from the database")
    .argument("<file>", "connector JSON: {name, config} as posted to Kafka Connect, or the bare config")
    .option("-o, --out <dir>", "directory the files are written to", "config")
    .option("--app-id <id>", "id of the generated postgres app (default: the connector name)")
    .option("-d, --database-url <url>", "read the tables through this connection instead of the connector's database.* settings", postgresUrl)
    .option("-f, --force", "overwrite existing files")
    .action(async (file: string, options: { out: string; appId?: string; databaseUrl?: string; force?: boolean }) => {
      process.exitCode = await (await import("./commands/import-debezium.js")).importDebeziumCommand(file, options);
    });
  return program;
}

/** Parses and runs; usage errors exit 64, help and version 0, an unexpected error 70 with its message. */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv as string[]);
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : EX_USAGE);
    const debug = process.env.LOG_LEVEL === "debug" || process.env.LOG_LEVEL === "trace";
    process.stderr.write(`error: ${error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error)}\n`);
    process.exit(EX_SOFTWARE);
  }
}
