// Checks of every flag and environment variable, before anything starts: each parser takes the text
// given and returns the value, or throws commander's InvalidArgumentError saying what the flag accepts
// (commander names the flag; the CLI exits 64, EX_USAGE). The environment variables the daemon reads
// (LOG_LEVEL, LOG_FORMAT) are checked the same way.
import { existsSync } from "node:fs";
import { CommanderError, InvalidArgumentError, type Command } from "commander";
import { EX_USAGE } from "./exit-codes.js";
import { isLoopback, parseListen } from "./http.js";

/** The environment variable `status --url` takes its API key from (out of the process list). */
export const API_KEY_ENV = "GROUPAROO_API_KEY";

/** A whole number in [min, max]. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const text = value.trim();
    const n = /^[+-]?\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected a whole number >= ${min}` : `expected a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** A duration in whole milliseconds (the flags end in -ms). */
export function milliseconds(min: number): (value: string) => number {
  const parse = integer(min);
  return (value) => {
    try {
      return parse(value);
    } catch {
      throw new InvalidArgumentError(`expected a duration in whole milliseconds >= ${min} (e.g. 5000)`);
    }
  };
}

/** host:port, [v6]:port; the text is kept (the daemon parses it again to listen). */
export function hostPort(value: string): string {
  try {
    parseListen(value);
  } catch {
    throw new InvalidArgumentError("expected host:port (e.g. 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464), port 0 to 65535");
  }
  return value;
}

/** A path that exists (a config file or directory). */
export function existingPath(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("expected a path");
  if (!existsSync(value)) throw new InvalidArgumentError(`${value} does not exist (expected a config file or directory)`);
  return value;
}

/** A path, not checked here (a state directory: what it must hold depends on the command). */
export function path(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("expected a directory path");
  return value;
}

/** An instant: ISO-8601 or epoch milliseconds. */
export function instant(value: string): string {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(ms)) throw new InvalidArgumentError("expected an ISO-8601 time (2026-01-31T12:00:00Z) or epoch milliseconds");
  return value;
}

/** A postgres:// or postgresql:// connection URL. */
export function postgresUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError("expected a postgres://user:password@host:port/database URL");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new InvalidArgumentError("expected a postgres:// or postgresql:// URL");
  if (url.port !== "" && !/^\d+$/.test(url.port)) throw new InvalidArgumentError("expected a numeric port in the URL");
  return value;
}

/** One of a fixed list. */
export function oneOf<T extends string>(values: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(values as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${values.join(", ")}`);
    return value as T;
  };
}

/** An http:// or https:// URL (a daemon's listener). */
export function httpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError("expected an http://host:port URL (e.g. http://127.0.0.1:9464)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InvalidArgumentError("expected an http:// or https:// URL");
  if (url.username || url.password) throw new InvalidArgumentError("expected a URL without credentials (give the key with --api-key or GROUPAROO_API_KEY)");
  return value;
}

/** A comma-separated list with at least one entry. */
export function list(value: string): string {
  if (value.split(",").every((v) => v.trim() === "")) throw new InvalidArgumentError("expected a comma-separated list of names");
  return value;
}

/** Problems with the API flags together (--api-insecure only where nobody else can connect); empty when fine. */
export function apiFlagProblems(options: { http: string; apiInsecure?: boolean }): string[] {
  if (!options.apiInsecure) return [];
  const { host } = parseListen(options.http);
  return isLoopback(host) ? [] : [`--api-insecure serves the API without keys, so only on a loopback address (127.0.0.1, ::1, localhost); --http is ${options.http}`];
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Problems with the environment variables the daemon reads (LOG_LEVEL, LOG_FORMAT); empty when fine. */
export function environmentProblems(env: Readonly<Record<string, string | undefined>>): string[] {
  const problems: string[] = [];
  const level = env.LOG_LEVEL;
  if (level !== undefined && level !== "" && !(LOG_LEVELS as readonly string[]).includes(level)) problems.push(`LOG_LEVEL "${level}" is invalid: expected one of ${LOG_LEVELS.join(", ")}`);
  const format = env.LOG_FORMAT;
  if (format !== undefined && format !== "" && !(LOG_FORMATS as readonly string[]).includes(format)) problems.push(`LOG_FORMAT "${format}" is invalid: expected one of ${LOG_FORMATS.join(", ")}`);
  return problems;
}

/**
 * Why this Node cannot run grouparoo-stream, when it refuses to compile code from text
 * (`--disallow-code-generation-from-strings`, on its command line or in NODE_OPTIONS): the config's
 * schema validation (ajv), the HTTP API's serializers (fastify) and the groups' rules (core/rules.ts)
 * compile functions when they start. Undefined when it compiles.
 */
export function codeGenerationProblem(): string | undefined {
  try {
    new Function("return 0");
    return undefined;
  } catch {
    return "Node refuses to compile code from text here (--disallow-code-generation-from-strings, on its command line or in NODE_OPTIONS), and grouparoo-stream needs it: its config validation, HTTP API and group rules compile functions when they start. Start it without that flag";
  }
}

/** Ends a command before it starts when there are problems: each on stderr, exit 64 (EX_USAGE). */
export function refuseUsage(problems: readonly string[]): void {
  if (problems.length === 0) return;
  process.stderr.write(`error: ${problems.join("; ")}\n`);
  throw new CommanderError(EX_USAGE, "grouparoo.invalidEnvironment", problems.join("; "));
}

/**
 * The drain and delivery flags `run` and `worker` share, with one set of defaults: `scope` is what a
 * bound and a concurrency apply to, `pauses` what the outbox bound holds back.
 */
export function deliveryFlags(command: Command, scope: string, pauses: string): Command {
  return command
    .option("--drain-timeout-ms <ms>", "how long SIGTERM keeps delivering the outbox", milliseconds(0), 10_000)
    .option("--outbox-bound <n>", `exports waiting per ${scope} above which ${pauses}, 1 or more`, integer(1), 100_000)
    .option("--delivery-batch-size <n>", "exports per delivery request, 1 or more", integer(1), 100)
    .option("--delivery-concurrency <n>", `delivery requests in flight per ${scope}, 1 or more`, integer(1), 2)
    .option("--max-attempts <n>", "deliveries of an export before it is dead-lettered, 1 or more", integer(1), 10)
    .option("--max-backoff-ms <ms>", "longest wait between two attempts of an export (exponential from 200 ms, with jitter)", milliseconds(1), 60_000);
}
