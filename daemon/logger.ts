// Logs (pino) with secrets redacted wherever they may appear in logged objects: JSON lines on stdout,
// or with LOG_FORMAT=pretty one readable line per entry (pino-pretty, synchronous as well). LOG_LEVEL
// and LOG_FORMAT are checked before the daemon starts (daemon/flags.ts).
import { pino, type Logger } from "pino";
import type pretty from "pino-pretty";
import { lazyPackage } from "../connectors/lazy.js";

/** Loaded only for LOG_FORMAT=pretty. */
const pinoPretty = lazyPackage<typeof pretty>("pino-pretty");

export const REDACTED_PATHS = [
  "password",
  "*.password",
  "*.*.password",
  "secret",
  "*.secret",
  "*.*.secret",
  "apiKey",
  "*.apiKey",
  "connectionString",
  "*.connectionString",
  "*.*.connectionString",
  'options.debezium["database.password"]',
  "*.sasl",
];

export function createLogger(level = process.env.LOG_LEVEL || "info", format = process.env.LOG_FORMAT || "json"): Logger {
  const options = { level, base: { service: "grouparoo-stream" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  // Synchronous writes: every line is out before the process exits (the CLI exits explicitly).
  if (format === "pretty") return pino(options, pinoPretty()({ sync: true, destination: 1, ignore: "service,hostname", translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l o" }));
  return pino(options, pino.destination({ dest: 1, sync: true }));
}
