// Which Kafka errors are permanent (retrying cannot help until the cluster or the config is fixed):
// failed SASL authentication, authorization refused for a topic, group or the cluster, an unsupported
// API or SASL mechanism, a session timeout the broker does not allow. Everything else (brokers unreachable, connections closed, timeouts, a
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
  // The app's sessionTimeoutMs outside the broker's group.min/max.session.timeout.ms: no join can succeed.
  "INVALID_SESSION_TIMEOUT",
]);

/** Errors a broker answers a produced message with that sending it again cannot change. */
const REFUSED_MESSAGE_TYPES = new Set(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD", "INVALID_REQUIRED_ACKS"]);

type Wrapped = { name?: string; type?: string; message?: string; originalError?: unknown; cause?: unknown } | null;

/** The first of the error and those it wraps (kafkajs wraps the one that made it give up) that `test` matches. */
function innermost(error: unknown, test: (e: NonNullable<Wrapped>) => boolean): NonNullable<Wrapped> | undefined {
  let inner = error as Wrapped;
  for (let depth = 0; inner && depth < 5; depth += 1) {
    if (test(inner)) return inner;
    const next = (inner.originalError ?? inner.cause) as Wrapped | undefined;
    if (!next || next === inner) break;
    inner = next;
  }
  return undefined;
}

export function classifyKafkaError(error: unknown): KafkaErrorClass {
  const message = error instanceof Error ? error.message : String(error);
  const found = innermost(error, (e) => (e.name !== undefined && PERMANENT_NAMES.has(e.name)) || (e.type !== undefined && PERMANENT_TYPES.has(e.type)));
  return found ? { permanent: true, reason: found.message ?? message } : { permanent: false, reason: message };
}

/** Whether producing the same message again can never succeed: a permanent error, or the broker refusing the message itself (too large for the topic, say). */
export function refusedForGood(error: unknown): boolean {
  return classifyKafkaError(error).permanent || innermost(error, (e) => e.type !== undefined && REFUSED_MESSAGE_TYPES.has(e.type)) !== undefined;
}

/** Whether the broker refused a produced batch for its size (past the topic's max.message.bytes). */
export function tooLargeForTopic(error: unknown): boolean {
  return innermost(error, (e) => e.type === "MESSAGE_TOO_LARGE" || e.type === "RECORD_LIST_TOO_LARGE") !== undefined;
}

/**
 * Runs `request` again while it fails with an error kafkajs marks retriable (the group's coordinator
 * loading or moving, a leader election), with backoff from 100 ms to 2 s, for up to `forMs`. For the
 * admin requests kafkajs does not retry itself (fetchOffsets: one NOT_COORDINATOR, a group's
 * coordinator still loading or just moved, failed a partition's takeover and stopped the worker).
 */
export async function retryRetriable<T>(request: () => Promise<T>, forMs = 30_000, sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms))): Promise<T> {
  const deadline = Date.now() + forMs;
  let delay = 100;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      const retriable = innermost(error, (e) => (e as { retriable?: unknown }).retriable === true) !== undefined;
      if (!retriable || Date.now() + delay > deadline) throw error;
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
  }
}
