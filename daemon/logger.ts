// JSON logs (pino) with secrets redacted wherever they may appear in logged objects.
import { pino, type Logger } from "pino";

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

export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  // Synchronous writes: every line is out before the process exits (the CLI exits explicitly).
  return pino({ level, base: { service: "grouparoo-stream" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } }, pino.destination({ dest: 1, sync: true }));
}
