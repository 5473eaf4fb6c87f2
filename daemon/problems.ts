// Log lines for every delivery failure, without one line per retry: per destination, the failed
// attempts are summed and logged at most once per interval (warn, with counts and the last error),
// and every export that becomes a dead letter is logged on its own (error, with its record and reason).
import type { Logger } from "pino";
import type { OutboxEntry } from "../state/store.js";
import type { DeliveryOutcome } from "../streams/delivery.js";

export class DeliveryLog {
  private retries = 0;
  private lastError: string | undefined;
  private windowStart: number | undefined;
  private loggedAt: number | undefined;
  private failing = false;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  delivered(outcomes: readonly DeliveryOutcome<OutboxEntry>[], batchSize: number): void {
    let ok = 0;
    for (const outcome of outcomes) {
      if (outcome.status !== "error") {
        ok += 1;
        continue;
      }
      if (outcome.retryAt === undefined) {
        // The dead letter's seq is what dead-letters, the API and retry by seqs name it by; the
        // export's outbox seq is another number, named as such.
        this.logger.error(
          { recordId: outcome.entry.recordId, deadLetterSeq: outcome.deadLetterSeq, exportSeq: outcome.entry.seq, attempts: (outcome.entry.attempts ?? 0) + 1, reason: outcome.message },
          "export dead-lettered (grouparoo-stream dead-letters lists it by its deadLetterSeq; retry-exports re-queues it)",
        );
      } else {
        this.retries += 1;
        this.lastError = outcome.message;
      }
    }
    this.logger.debug({ batchSize, ok, failed: outcomes.length - ok }, "delivery batch answered");
    const now = this.clock();
    if (this.retries > 0) {
      this.windowStart ??= now;
      if (this.loggedAt === undefined || now - this.loggedAt >= this.intervalMs) {
        this.logger.warn(
          { retries: this.retries, sinceMs: now - this.windowStart, lastError: this.lastError },
          this.failing ? "deliveries still failing; retrying with backoff" : "delivery failed; retrying with backoff",
        );
        this.failing = true;
        this.loggedAt = now;
        this.retries = 0;
        this.windowStart = undefined;
      }
    }
    if (ok > 0 && this.failing && this.retries === 0) {
      this.logger.info({}, "deliveries succeed again");
      this.failing = false;
      this.loggedAt = undefined;
    }
  }
}
