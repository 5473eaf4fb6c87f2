// Log lines for every delivery failure, without one line per retry: per destination, the failed
// attempts are summed and logged at most once per interval (warn, with counts and the last error),
// and every export that becomes a dead letter is logged on its own (error, with its record and reason).
// And columns a source's rows lack, once each.
import type { Logger } from "pino";
import type { BatchResult } from "../core/apply.js";
import { columnsRead, type Domain } from "../core/domain.js";
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

/**
 * Columns a source's properties or mapping read that its whole rows do not have (BatchResult's
 * missingColumns): a column dropped from the table, one a CDC connector filters out upstream
 * (Debezium's `column.exclude.list`), a generated column pgoutput does not send, or a misspelt
 * `column`. The properties hold null from each such row on. Logged at error once per source and
 * column until the config is loaded again (a reload starts a new log).
 */
export class MissingColumnsLog {
  private readonly told = new Set<string>();

  constructor(
    private readonly logger: Logger,
    private readonly domain: Domain,
  ) {}

  saw(result: BatchResult | undefined): void {
    if (!result || result.missingColumns.size === 0) return;
    for (const [sourceId, columns] of result.missingColumns) {
      const source = this.domain.sources.get(sourceId);
      for (const column of columns) {
        const key = `${sourceId}\u0000${column}`;
        if (this.told.has(key)) continue;
        this.told.add(key);
        const properties = (source?.properties ?? []).filter((p) => columnsRead(p).includes(column)).map((p) => p.id);
        const mapping = source?.mapping.some((m) => m.column === column) === true;
        const readers = [...properties.map((p) => `property "${p}"`), ...(mapping ? ["the source's mapping"] : [])].join(", ");
        this.logger.error(
          { source: sourceId, column, properties, mapping },
          `the rows of source "${sourceId}" have no column "${column}" (read by ${readers}): null is read from each such row on. Check the column's name in the config, and whether it was dropped from the table or is left out upstream (a postgres source's live check refuses a column its table lacks: exit 78 at the next start)`,
        );
      }
    }
  }
}
