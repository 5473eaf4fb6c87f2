// Issue #12, the parts that need no service: every flag and environment variable checked (item 5),
// Postgres errors classified as permanent or transient (item 2), one LSN format (item 7), failures
// logged without flooding (items 2, 3 and 7), and the exit code of each state problem (item 4).
import { InvalidArgumentError } from "commander";
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSSASLAuthenticationError } from "kafkajs";
import { classifyKafkaError } from "../../connectors/kafka/errors.js";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ProblemLog } from "../../connectors/problem-log.js";
import { classifyPostgresError, PermanentError } from "../../connectors/postgres/errors.js";
import { normalizeLsn, previousLsn } from "../../connectors/postgres/settings.js";
import { stateExitCode } from "../../daemon/exit-codes.js";
import { environmentProblems, hostPort, instant, integer, milliseconds, oneOf, postgresUrl } from "../../daemon/flags.js";
import { DeliveryLog } from "../../daemon/problems.js";
import { StateOpenError } from "../../state/open.js";
import type { OutboxEntry } from "../../state/store.js";
import type { DeliveryOutcome } from "../../streams/delivery.js";

/** A pino logger writing its lines into an array. */
function capture(level = "debug") {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe("flags (item 5)", () => {
  it("takes whole numbers in range and refuses the rest, saying what is accepted", () => {
    const batch = integer(1);
    expect(batch("5000")).toBe(5000);
    for (const bad of ["abc", "", "0", "-1", "1.5", "1e3", "5000x", "9007199254740993"]) expect(() => batch(bad), bad).toThrow(InvalidArgumentError);
    expect(() => batch("abc")).toThrow("expected a whole number >= 1");
    expect(integer(0, 10)("0")).toBe(0);
    expect(() => integer(0, 10)("11")).toThrow("expected a whole number from 0 to 10");
    expect(milliseconds(0)("0")).toBe(0);
    expect(() => milliseconds(0)("5s")).toThrow("expected a duration in whole milliseconds >= 0");
  });

  it("takes host:port and refuses a host alone or a bad port", () => {
    expect(hostPort("127.0.0.1:9464")).toBe("127.0.0.1:9464");
    expect(hostPort("[::1]:0")).toBe("[::1]:0");
    for (const bad of ["localhost", "localhost:", ":9464x", "host:65536", "host:http"]) expect(() => hostPort(bad), bad).toThrow("expected host:port");
  });

  it("takes instants, postgres URLs and listed values", () => {
    expect(instant("2026-01-31T12:00:00Z")).toBe("2026-01-31T12:00:00Z");
    expect(instant("1700000000000")).toBe("1700000000000");
    expect(() => instant("yesterday")).toThrow("expected an ISO-8601 time");
    expect(postgresUrl("postgres://u@h:5432/db")).toBe("postgres://u@h:5432/db");
    expect(() => postgresUrl("postgres://u@h:notaport/db")).toThrow("expected a postgres://");
    expect(() => postgresUrl("mysql://u@h/db")).toThrow("expected a postgres:// or postgresql:// URL");
    expect(oneOf(["change", "export"])("export")).toBe("export");
    expect(() => oneOf(["change", "export"])("all")).toThrow("expected one of change, export");
  });

  it("checks LOG_LEVEL and LOG_FORMAT", () => {
    expect(environmentProblems({})).toEqual([]);
    expect(environmentProblems({ LOG_LEVEL: "debug", LOG_FORMAT: "pretty" })).toEqual([]);
    expect(environmentProblems({ LOG_LEVEL: "verbose", LOG_FORMAT: "xml" })).toEqual([
      'LOG_LEVEL "verbose" is invalid: expected one of fatal, error, warn, info, debug, trace, silent',
      'LOG_FORMAT "xml" is invalid: expected one of json, pretty',
    ]);
  });
});

describe("Postgres errors (item 2)", () => {
  const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

  it("calls missing objects, permissions, credentials and bad URLs permanent", () => {
    for (const [code, message] of [
      ["42P01", 'relation "public.nosuch" does not exist'],
      ["42501", "permission denied for table users"],
      ["28P01", 'password authentication failed for user "app"'],
      ["28000", "no pg_hba.conf entry"],
      ["3D000", 'database "nosuch" does not exist'],
    ] as const) {
      expect(classifyPostgresError(pgError(code, message)), code).toEqual({ permanent: true, reason: `${message} (SQLSTATE ${code})` });
    }
    let invalid: unknown;
    try {
      new URL("postgres://u@h:notaport/db");
    } catch (error) {
      invalid = error;
    }
    expect(classifyPostgresError(invalid)).toEqual({ permanent: true, reason: "invalid connection string: Invalid URL" });
    expect(classifyPostgresError(new PermanentError("publication p does not exist and publication.autocreate.mode is disabled")).permanent).toBe(true);
  });

  it("calls connection failures, shutdowns and a slot still in use transient", () => {
    for (const error of [
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
      Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
      Object.assign(new Error("timeout"), { code: "ETIMEDOUT" }),
      pgError("57P01", "terminating connection due to administrator command"),
      pgError("55006", 'replication slot "s" is active for PID 42'),
      pgError("08006", "connection failure"),
      new Error("Connection terminated unexpectedly"),
    ]) {
      expect(classifyPostgresError(error).permanent, error.message).toBe(false);
    }
  });
});

describe("Kafka errors (item 2)", () => {
  it("calls authentication and authorization permanent, an unreachable cluster transient, also when kafkajs wraps them", () => {
    // The type declarations give this class no constructor arguments; the class takes the message.
    const Sasl = KafkaJSSASLAuthenticationError as unknown as new (message: string) => Error;
    const auth = new Sasl("SASL SCRAM SHA256 authentication failed");
    expect(classifyKafkaError(auth)).toEqual({ permanent: true, reason: "SASL SCRAM SHA256 authentication failed" });
    const denied = new KafkaJSProtocolError({ message: "Not authorized to access topics: [Topic authorization failed]", type: "TOPIC_AUTHORIZATION_FAILED", code: 29, retriable: false } as unknown as string);
    expect(classifyKafkaError(new KafkaJSNumberOfRetriesExceeded(denied, { retryCount: 5, retryTime: 1000 })).permanent).toBe(true);
    const refused = new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:1");
    expect(classifyKafkaError(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 12, retryTime: 10000 }))).toEqual({ permanent: false, reason: "Connection error: connect ECONNREFUSED 127.0.0.1:1" });
  });
});

describe("positions (item 7)", () => {
  it("prints LSNs as Postgres does: X/Y, uppercase, no zero padding", () => {
    expect(normalizeLsn("00000000/01E59C90")).toBe("0/1E59C90");
    expect(normalizeLsn("0/291edd8")).toBe("0/291EDD8");
    expect(normalizeLsn("00000016/B374D848")).toBe("16/B374D848");
    expect(normalizeLsn("complete:0/1")).toBe("complete:0/1");
    expect(previousLsn("00000000/01E59C90")).toBe("0/1E59C8F");
  });
});

describe("failures logged without flooding (items 2, 3, 7)", () => {
  it("logs a repeating failure once with its stack, then at most once per interval with a count", () => {
    let now = 0;
    const { logger, lines } = capture();
    const log = new ProblemLog(logger, "error", 60_000, () => now);
    const error = new Error('relation "public.nosuch" does not exist');
    expect(log.report("missing", { app: "a" }, "cannot run", error)).toBe(true);
    for (let i = 0; i < 5; i += 1) {
      now += 10_000;
      expect(log.report("missing", { app: "a" }, "cannot run", error)).toBe(false);
    }
    now += 10_000;
    expect(log.report("missing", { app: "a" }, "cannot run", error)).toBe(true);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 50, app: "a", attempt: 1, msg: "cannot run" });
    expect((lines[0]?.err as { stack?: string }).stack).toContain("does not exist");
    expect(lines[1]).toMatchObject({ level: 50, error: "missing", attempt: 7, repeatedSinceLastLine: 5 });
    expect(lines[1]?.err).toBeUndefined();
  });

  it("logs reconnect attempts at warn, the stack only the first time", () => {
    const { logger, lines } = capture();
    const log = new ProblemLog(logger, "warn", 0);
    for (let i = 0; i < 3; i += 1) log.report("ECONNREFUSED", { retryInMs: 500 * 2 ** i }, "postgres replication failed; reconnecting", new Error("connect ECONNREFUSED"));
    expect(lines.map((l) => [l.level, l.err === undefined])).toEqual([
      [40, false],
      [40, true],
      [40, true],
    ]);
    log.clear();
    log.report("ECONNREFUSED", {}, "again", new Error("connect ECONNREFUSED"));
    expect(lines[3]?.err).toBeDefined();
  });

  it("logs delivery retries at most once per interval with counts, and every dead letter with its reason", () => {
    let now = 1_000;
    const { logger, lines } = capture("info");
    const log = new DeliveryLog(logger, 10_000, () => now);
    const entry = (seq: number) => ({ seq, recordId: String(seq), attempts: 2 }) as OutboxEntry;
    const retry = (seq: number): DeliveryOutcome<OutboxEntry> => ({ entry: entry(seq), status: "error", message: "503 Service Unavailable", retryAt: now + 1000 });
    for (let i = 0; i < 50; i += 1) {
      log.delivered([retry(i)], 1);
      now += 100;
    }
    // 50 retries over 5 s: one line.
    expect(lines.map((l) => [l.level, l.msg, l.retries])).toEqual([[40, "delivery failed; retrying with backoff", 1]]);
    now += 10_000;
    log.delivered([retry(51)], 1);
    expect(lines[1]).toMatchObject({ level: 40, msg: "deliveries still failing; retrying with backoff", retries: 50, lastError: "503 Service Unavailable" });
    log.delivered([{ entry: entry(52), status: "error", message: 'new row for relation "contacts" violates check constraint "contacts_email_check"', deadLetterSeq: 7 }, { entry: entry(53), status: "ok" }], 2);
    expect(lines[2]).toMatchObject({ level: 50, recordId: "52", deadLetterSeq: 7, exportSeq: 52, attempts: 3, reason: 'new row for relation "contacts" violates check constraint "contacts_email_check"' });
    expect(lines[3]).toMatchObject({ level: 30, msg: "deliveries succeed again" });
  });
});

describe("exit codes of state problems (items 1, 4, 5)", () => {
  it("maps each problem to its sysexits code", () => {
    expect(stateExitCode(new StateOpenError("x", "missing"))).toBe(66);
    expect(stateExitCode(new StateOpenError("x", "cannot-create"))).toBe(73);
    expect(stateExitCode(new StateOpenError("x", "io"))).toBe(74);
    expect(stateExitCode(new StateOpenError("x", "locked", 42))).toBe(75);
    expect(stateExitCode(new StateOpenError("x", "layout"))).toBe(65);
  });
});
