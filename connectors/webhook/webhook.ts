// webhook destination: POSTs a JSON batch `{destinationId, exports}` to the app's url (+ path), with an
// Idempotency-Key (the same batch gets the same key on a retry) and, with a secret, an
// X-Grouparoo-Signature header: sha256=<hex HMAC-SHA256 of the body>. A 2xx may answer per export
// (`{"results": [{"seq", "status": "ok"|"info"|"error", "message"}]}`; any other status makes the answer
// malformed: logged, the batch retried as possibly landed); 429 and 5xx are retried
// (honouring Retry-After), and 408; 401, 403, 404, 405, 407 and 410 say the webhook itself is wrong
// (its credentials, its address), not the exports: the destination's own problem, named on /readyz,
// retried until it is fixed; any other status rejects the batch as a whole, a redirect too (never followed).
import { createHash, createHmac } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import type * as Undici from "undici";
import type { Logger } from "pino";
import { lazyPackage } from "../lazy.js";
import { ProblemLog } from "../problem-log.js";
import { DeliveryError, EXPORT_RESULT_STATUSES, type DeliverableExport, type DestinationComponent, type DestinationConnector, type ExportResult } from "../types.js";
import { redactUrl, scrubUrl, type WebhookAppOptions } from "./app.js";

const undici = lazyPackage<typeof Undici>("undici");

/** One header's value (undici gives a repeated header as an array: its first). */
const header = (value: string | string[] | undefined): string | null => (Array.isArray(value) ? (value[0] ?? null) : (value ?? null));

export const WebhookDestinationOptions = Type.Object(
  {
    path: Type.Optional(Type.String({ description: "Path appended to the app's url.", default: "" })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: "Exports per request (overrides --delivery-batch-size for this destination)." })),
  },
  { additionalProperties: false },
);
type WebhookDestinationOptions = Static<typeof WebhookDestinationOptions>;

export const SIGNATURE_HEADER = "x-grouparoo-signature";

/**
 * Answers that say the webhook itself is wrong, not the exports it was sent: its credentials (401, 403,
 * 407) or its address or method (404, 405, 410). Every batch would get the same answer, so they are the
 * destination's own problem (retried, named on /readyz), not a rejection of the batch (split, and every
 * export dead-lettered one by one).
 */
const OWN_PROBLEM_STATUSES: ReadonlyMap<number, string> = new Map([
  [401, "its credentials are refused"],
  [403, "its credentials are refused"],
  [407, "the proxy refuses its credentials"],
  [404, "no such address"],
  [405, "the address takes no POST"],
  [410, "no such address"],
]);

/**
 * The per-export results of a 2xx's body: undefined when it gives none (no body, not JSON, no
 * `results` array: every export is ok), or the first entry that is not `{seq: number, status: "ok" |
 * "info" | "error", message?: string}` (the answer is then malformed).
 */
export function parseResults(text: string): { results?: ExportResult[]; malformed?: { seq: unknown; status: unknown } } {
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    return {};
  }
  const results = (parsed as { results?: unknown } | null)?.results;
  if (!Array.isArray(results)) return {};
  const out: ExportResult[] = [];
  for (const result of results as unknown[]) {
    const { seq, status, message } = (typeof result === "object" && result !== null ? result : {}) as { seq?: unknown; status?: unknown; message?: unknown };
    if (typeof seq !== "number" || typeof status !== "string" || !EXPORT_RESULT_STATUSES.has(status)) return { malformed: { seq, status } };
    out.push({ seq, status: status as ExportResult["status"], ...(typeof message === "string" ? { message } : {}) });
  }
  return { results: out };
}

/** A value from a remote answer, for a message: JSON, at most 100 characters. */
const quoted = (value: unknown): string => (JSON.stringify(value) ?? String(value)).slice(0, 100);

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class WebhookDestination implements DestinationConnector {
  private reachable = true;
  /** The webhook's own problem (an answer of OWN_PROBLEM_STATUSES), until an answer says otherwise. */
  private failing: string | null = null;
  /** Malformed answers, at error: the first at once, the same again at most once a minute. */
  private readonly malformed: ProblemLog | undefined;
  /** The url as messages name it: without credentials, the query's values redacted (DESIGN.md: secrets never logged). */
  private readonly shownUrl: string;

  constructor(
    readonly destinationId: string,
    private readonly url: string,
    private readonly secret: string | undefined,
    private readonly headers: Record<string, string>,
    private readonly timeoutMs: number,
    logger?: Logger,
  ) {
    this.shownUrl = redactUrl(url);
    this.malformed = logger && new ProblemLog(logger, "error");
  }

  async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
    const body = JSON.stringify({ destinationId: this.destinationId, exports: batch });
    const idempotencyKey = createHash("sha256").update(`${this.destinationId}:${batch.map((e) => e.seq).join(",")}`).digest("hex");
    // undici's request, not fetch: the same client without the WHATWG layer (about a third of the CPU
    // a delivery costs, on the daemon's thread). It follows no redirect (see the 3xx below).
    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      const response = await undici().request(this.url, {
        method: "POST",
        headers: {
          ...this.headers,
          "content-type": "application/json",
          "idempotency-key": idempotencyKey,
          ...(this.secret ? { [SIGNATURE_HEADER]: signBody(this.secret, body) } : {}),
        },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = response.statusCode;
      headers = response.headers;
      text = await response.body.text();
    } catch (error) {
      this.reachable = false;
      // The client's message may quote the url (an invalid one, say): its secrets are scrubbed.
      throw new DeliveryError(`POST ${this.shownUrl} failed: ${scrubUrl((error as Error).message, this.url)}`, true);
    }
    this.reachable = true;
    const own = OWN_PROBLEM_STATUSES.get(status);
    if (own !== undefined) {
      // The problem, on /readyz (which answers without a key) and /status, names the status alone: the
      // answer's body may quote the request's credentials (a header's token), which only the url's
      // secrets are scrubbed of. The export's error (the API with a key, and the log) keeps the body.
      this.failing = `POST ${this.shownUrl} answered ${status} (${own})`;
      throw new DeliveryError(`${this.failing}: ${scrubUrl(text.slice(0, 300), this.url)}`, true, parseRetryAfter(header(headers["retry-after"])));
    }
    this.failing = null;
    if (status === 429 || status === 408 || status >= 500) {
      throw new DeliveryError(`POST ${this.shownUrl} answered ${status}`, true, parseRetryAfter(header(headers["retry-after"])));
    }
    if (status >= 300 && status < 400) {
      // A redirect is not followed: the body and its signature go only where the config says.
      const location = header(headers.location);
      throw new DeliveryError(`POST ${this.shownUrl} answered ${status} (a redirect${location ? ` to ${redactUrl(location)}` : ""}; redirects are not followed: set the app's url to the final address)`, false);
    }
    if (status < 200 || status >= 300) {
      // The answer may quote the request (an invalid token, say): the url's secrets are scrubbed from it too.
      throw new DeliveryError(`POST ${this.shownUrl} answered ${status}: ${scrubUrl(text.slice(0, 300), this.url)}`, false);
    }
    const { results, malformed } = parseResults(text);
    if (malformed) {
      // A status it does not know (or an entry without one) is no answer for that export, nor can the
      // rest be trusted: the batch is retried as possibly landed (as an export left out of the answer is).
      const message = `POST ${this.shownUrl} answered ${status} with a malformed result: status ${quoted(malformed.status)} for seq ${quoted(malformed.seq)} (expected {seq, status: "ok" | "info" | "error"}); the batch is retried as possibly landed`;
      this.malformed?.report(message, { seq: typeof malformed.seq === "number" ? malformed.seq : quoted(malformed.seq), status: quoted(malformed.status), batchSize: batch.length }, "the webhook's answer is malformed: an unknown export status");
      throw new DeliveryError(message, true);
    }
    return results ?? batch.map((e) => ({ seq: e.seq, status: "ok" }));
  }

  ready(): boolean {
    return this.reachable && this.failing === null;
  }

  problem(): string | null {
    return this.failing;
  }

  async stop(): Promise<void> {}
}

export const webhookDestination: DestinationComponent = {
  type: "webhook",
  appType: "webhook",
  options: WebhookDestinationOptions,
  operationalOptions: ["batchSize"],
  metrics: [],
  delivery: (destination) => {
    const { batchSize } = destination.options as WebhookDestinationOptions;
    return batchSize === undefined ? {} : { batchSize };
  },
  create(destination, app, context) {
    const appOptions = app.options as WebhookAppOptions;
    const options = destination.options as WebhookDestinationOptions;
    const url = `${appOptions.url.replace(/\/$/, "")}${options.path ?? ""}`;
    return new WebhookDestination(destination.id, url, appOptions.secret, appOptions.headers ?? {}, appOptions.timeoutMs ?? 10_000, context.logger);
  },
};
