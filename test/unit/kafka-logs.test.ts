// kafkajs's log lines through pino (connectors/kafka/app.ts): what kafkajs retries by itself during a
// rebalance or a broker's start is a warning; other errors stay errors; other levels keep theirs.
import { logLevel, type LogEntry } from "kafkajs";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { kafkaClientConfig } from "../../connectors/kafka/app.js";
import type { AppConfig } from "../../core/config/schema.js";

function levelsOf(entries: { level: logLevel; message: string; extra?: Record<string, unknown> }[]): string[] {
  const lines: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  const app = { class: "app", id: "bus", type: "kafka", options: { brokers: ["127.0.0.1:9092"] } } as unknown as AppConfig;
  const log = kafkaClientConfig(app, logger).logCreator?.(logLevel.DEBUG);
  for (const { level, message, extra } of entries) log?.({ namespace: "Connection", level, label: "ERROR", log: { timestamp: "", message, ...extra } } as LogEntry);
  return lines.map((l) => pino.levels.labels[(JSON.parse(l) as { level: number }).level] ?? "?");
}

describe("kafkajs logs", () => {
  it("makes transient broker answers warnings and keeps real errors", () => {
    expect(
      levelsOf([
        { level: logLevel.ERROR, message: "Response GroupCoordinator", extra: { error: "The coordinator is loading and hence can't process requests" } },
        { level: logLevel.ERROR, message: "[Connection] Response Heartbeat(key: 12, version: 3)", extra: { error: "The group is rebalancing, so a rejoin is needed" } },
        { level: logLevel.ERROR, message: "Failed to send", extra: { retryCount: 1, retryTime: 300 } },
        { level: logLevel.ERROR, message: "Connection error: connect ECONNREFUSED 127.0.0.1:9092" },
        { level: logLevel.ERROR, message: "Crash: KafkaJSNumberOfRetriesExceeded" },
        { level: logLevel.WARN, message: "something" },
        { level: logLevel.INFO, message: "Starting" },
      ]),
    ).toEqual(["warn", "warn", "warn", "error", "error", "warn", "info"]);
  });
});
