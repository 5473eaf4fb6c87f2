// The kafka app: a Kafka cluster (brokers, client and consumer group ids, TLS, SASL) shared by its
// kafka-debezium sources and kafka-topic destinations; kafkajs is configured here and nowhere else.
import { Type, type Static } from "@sinclair/typebox";
import type * as Kafkajs from "kafkajs";
import type { Kafka, KafkaConfig, LogEntry } from "kafkajs";
import type { Logger } from "pino";
import { literals } from "../../core/config/schema.js";
import type { AppConfig } from "../../core/config/schema.js";
import { lazyPackage } from "../lazy.js";
import type { AppComponent } from "../types.js";

/** kafkajs, loaded when the first Kafka client is made. */
export const kafkajs = lazyPackage<typeof Kafkajs>("kafkajs");

export const KafkaAppOptions = Type.Object(
  {
    brokers: Type.Union([Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), Type.String({ minLength: 1 })], {
      description: "Bootstrap brokers: a list of host:port, or one comma-separated string.",
    }),
    clientId: Type.Optional(Type.String({ description: "Kafka client id.", default: "grouparoo-stream" })),
    groupId: Type.Optional(Type.String({ description: "Consumer group id.", default: "grouparoo-stream" })),
    sessionTimeoutMs: Type.Optional(Type.Integer({ minimum: 1000, default: 30000, description: "Consumer session timeout: how long a dead member holds its partitions." })),
    ssl: Type.Optional(
      Type.Union(
        [
          Type.Boolean(),
          Type.Object(
            {
              ca: Type.Optional(Type.String({ description: "CA certificate (PEM)." })),
              cert: Type.Optional(Type.String({ description: "Client certificate (PEM)." })),
              key: Type.Optional(Type.String({ description: "Client key (PEM)." })),
              rejectUnauthorized: Type.Optional(Type.Boolean({ default: true })),
            },
            { additionalProperties: false },
          ),
        ],
        { description: "TLS: true, or PEM material." },
      ),
    ),
    sasl: Type.Optional(
      Type.Object(
        {
          mechanism: literals(["plain", "scram-sha-256", "scram-sha-512"], "SASL mechanism."),
          username: Type.String(),
          password: Type.String({ description: "Use ${VAR}; never logged." }),
        },
        { additionalProperties: false, description: "SASL authentication." },
      ),
    ),
  },
  { additionalProperties: false },
);
export type KafkaAppOptions = Static<typeof KafkaAppOptions>;

export const kafkaApp: AppComponent = { type: "kafka", options: KafkaAppOptions };

/** Broker answers kafkajs retries: a coordinator loading or moving, a rebalance, a leader election, a concurrent transaction step. */
const TRANSIENT = /coordinator is (loading|not available)|not the correct coordinator|rebalanc|leader(ship)? (is )?not available|does not host this topic-partition|concurrent operation|heartbeat/i;

/** The kafkajs client settings of a kafka app, logging through pino. */
export function kafkaClientConfig(app: AppConfig, logger: Logger): KafkaConfig {
  const { logLevel } = kafkajs();
  const o = app.options as KafkaAppOptions;
  const brokers = Array.isArray(o.brokers) ? o.brokers : o.brokers.split(",").map((b) => b.trim());
  const levels: Record<number, "error" | "warn" | "info" | "debug"> = { [logLevel.ERROR]: "error", [logLevel.WARN]: "warn", [logLevel.INFO]: "info", [logLevel.DEBUG]: "debug" };
  return {
    clientId: o.clientId ?? "grouparoo-stream",
    brokers,
    ...(o.ssl === undefined ? {} : { ssl: o.ssl }),
    ...(o.sasl ? { sasl: { mechanism: o.sasl.mechanism, username: o.sasl.username, password: o.sasl.password } as KafkaConfig["sasl"] } : {}),
    retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 12 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...rest } = entry.log;
      // What kafkajs retries by itself during a rebalance or a broker's start is a warning, not an error.
      const transient = entry.level === logLevel.ERROR && (rest.retryCount !== undefined || TRANSIENT.test(`${message} ${String(rest.error ?? "")}`));
      logger[transient ? "warn" : (levels[entry.level] ?? "info")]({ kafka: entry.namespace, ...rest }, message);
    },
  };
}

/** A kafkajs client of a kafka app. */
export function kafkaClient(app: AppConfig, logger: Logger): Kafka {
  return new (kafkajs().Kafka)(kafkaClientConfig(app, logger));
}
