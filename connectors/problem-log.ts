// Logging a failure that repeats without flooding the log: the first occurrence of a reason at its
// level (with the error's stack), then the same reason at most once per interval, with how many times
// it happened meanwhile; a new reason is logged at once. Connectors use it for permanent problems
// (at error) and for reconnect attempts (at warn, the stack only the first time).
import type { Logger } from "pino";

export class ProblemLog {
  private last: { reason: string; at: number } | undefined;
  private suppressed = 0;
  private failures = 0;

  constructor(
    private readonly logger: Logger,
    private readonly level: "error" | "warn",
    private readonly intervalMs = 60_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /** How many failures were reported since the last clear(). */
  get count(): number {
    return this.failures;
  }

  /** Reports one failure; returns true when it was logged. */
  report(reason: string, fields: Record<string, unknown>, message: string, error?: unknown): boolean {
    this.failures += 1;
    const now = this.clock();
    const first = this.failures === 1;
    if (this.last && this.last.reason === reason && now - this.last.at < this.intervalMs) {
      this.suppressed += 1;
      return false;
    }
    const repeated = this.suppressed > 0 ? { repeatedSinceLastLine: this.suppressed } : {};
    // The stack helps once; after that the reason says it all.
    this.logger[this.level]({ ...fields, ...(first && error !== undefined ? { err: error } : { error: reason }), attempt: this.failures, ...repeated }, message);
    this.last = { reason, at: now };
    this.suppressed = 0;
    return true;
  }

  /** The failure is over (connected again): the next one is logged as a first. */
  clear(): void {
    this.last = undefined;
    this.suppressed = 0;
    this.failures = 0;
  }
}
