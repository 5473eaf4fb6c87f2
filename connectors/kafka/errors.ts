// Which Kafka errors are permanent (retrying cannot help until the cluster or the config is fixed):
// failed SASL authentication, authorization refused for a topic, group or the cluster, an unsupported
// API or SASL mechanism. Everything else (brokers unreachable, connections closed, timeouts, a
// coordinator moving, retries exhausted on any of those) is transient: retried with backoff.
export interface KafkaErrorClass {
  permanent: boolean;
  reason: string;
}

const PERMANENT_NAMES = new Set(["KafkaJSSASLAuthenticationError", "KafkaJSServerDoesNotSupportApiKey", "KafkaJSInvalidTopicName"]);
const PERMANENT_TYPES = new Set([
  "SASL_AUTHENTICATION_FAILED",
  "UNSUPPORTED_SASL_MECHANISM",
  "ILLEGAL_SASL_STATE",
  "TOPIC_AUTHORIZATION_FAILED",
  "GROUP_AUTHORIZATION_FAILED",
  "CLUSTER_AUTHORIZATION_FAILED",
  "INVALID_TOPIC_EXCEPTION",
]);

export function classifyKafkaError(error: unknown): KafkaErrorClass {
  // kafkajs wraps the error that made it give up (KafkaJSNumberOfRetriesExceeded, ...): classify the innermost one.
  let inner = error as { name?: string; type?: string; message?: string; originalError?: unknown; cause?: unknown } | null;
  const message = error instanceof Error ? error.message : String(error);
  for (let depth = 0; inner && depth < 5; depth += 1) {
    if ((inner.name && PERMANENT_NAMES.has(inner.name)) || (inner.type && PERMANENT_TYPES.has(inner.type))) {
      return { permanent: true, reason: inner.message ?? message };
    }
    const next = (inner.originalError ?? inner.cause) as typeof inner | undefined;
    if (!next || next === inner) break;
    inner = next;
  }
  return { permanent: false, reason: message };
}
