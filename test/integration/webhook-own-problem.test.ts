// A webhook that answers 401, 403, 404, 405, 407 or 410 says it is wrong itself (its credentials, its
// address), not the exports: every batch would get the same answer. Those are the destination's own
// problem, as a missing table or permission denied are for postgres-table: named by problem() (so on
// /readyz), retried past --max-attempts until fixed, nothing dead-lettered. Before, such an answer
// rejected the batch: Delivery split it down to single exports and dead-lettered every one (a rotated
// token turned the whole outbox into dead letters). A 408 is retried as a 5xx is.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { WebhookDestination } from "../../connectors/webhook/webhook.js";
import { exportOf as exportAt } from "../helpers/exports.js";
import { DEFAULT_DELIVERY_OPTIONS, Delivery, type DeliveryEntry, type DeliveryOutcome } from "../../streams/delivery.js";

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

const exportOf = (seq: number) => exportAt(seq, { destinationId: "hook", recordId: `r${seq}`, commitTime: 1_700_000_000_000 + seq });

describe("webhook destination: answers that say the webhook itself is wrong", () => {
  let handler: Handler = (_q, _b, r) => r.end();
  let requests = 0;
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      requests += 1;
      handler(request, body, response);
    });
  });
  let base = "";
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const rejection = async (promise: Promise<unknown>): Promise<DeliveryError> => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeliveryError);
    return error as DeliveryError;
  };

  it("takes 401, 403, 404, 405, 407 and 410 as its own problem (retried, named, not ready) until an answer says otherwise; 408 is retried", async () => {
    const hook = new WebhookDestination("hook", `${base}/hooks`, undefined, {}, 5000);
    const seen: [number, boolean, boolean, string | null][] = [];
    for (const status of [401, 403, 404, 405, 407, 410]) {
      handler = (_q, _b, r) => r.writeHead(status).end("nope");
      const error = await rejection(hook.deliver([exportOf(status)]));
      seen.push([status, error.retryable, hook.ready(), hook.problem()]);
      // The export's error keeps the answer's body; the problem (on /readyz, which answers without a key) does not.
      expect(error.message).toBe(`${hook.problem() ?? ""}: nope`);
    }
    const reasons: Record<number, string> = { 401: "its credentials are refused", 403: "its credentials are refused", 404: "no such address", 405: "the address takes no POST", 407: "the proxy refuses its credentials", 410: "no such address" };
    expect(seen).toEqual([401, 403, 404, 405, 407, 410].map((status) => [status, true, false, `POST ${base}/hooks answered ${status} (${reasons[status]})`]));
    // A 408 is a timeout: retried, and no problem of the webhook's own.
    handler = (_q, _b, r) => r.writeHead(408, { "retry-after": "3" }).end();
    const timeout = await rejection(hook.deliver([exportOf(1)]));
    expect({ retryable: timeout.retryable, retryAfterMs: timeout.retryAfterMs, problem: hook.problem(), ready: hook.ready() }).toEqual({ retryable: true, retryAfterMs: 3000, problem: null, ready: true });
    // A data rejection is still a rejection of the batch, and not the webhook's problem.
    handler = (_q, _b, r) => r.writeHead(401).end();
    await rejection(hook.deliver([exportOf(2)]));
    handler = (_q, _b, r) => r.writeHead(422).end("field id is required");
    const rejected = await rejection(hook.deliver([exportOf(3)]));
    expect({ retryable: rejected.retryable, problem: hook.problem() }).toEqual({ retryable: false, problem: null });
    // Answered 2xx: no problem, ready.
    handler = (_q, _b, r) => r.writeHead(401).end();
    await rejection(hook.deliver([exportOf(4)]));
    handler = (_q, _b, r) => r.writeHead(200).end();
    expect(await hook.deliver([exportOf(5)])).toEqual([{ seq: 5, status: "ok" }]);
    expect({ problem: hook.problem(), ready: hook.ready() }).toEqual({ problem: null, ready: true });
  });

  it("a batch answered 401 past --max-attempts is neither split nor dead-lettered: every export arrives once the credentials are fixed", { timeout: 20_000 }, async () => {
    requests = 0;
    let accepted = false;
    const received: number[] = [];
    handler = (_q, body, r) => {
      if (!accepted) return void r.writeHead(401).end("invalid token");
      for (const e of (JSON.parse(body) as { exports: DeliverableExport[] }).exports) received.push(e.seq);
      r.writeHead(200).end();
    };
    const entries = new Map<number, DeliveryEntry & { notBefore?: number }>(Array.from({ length: 8 }, (_, i) => [i + 1, exportOf(i + 1)]));
    const outcomes: DeliveryOutcome<DeliveryEntry>[] = [];
    const store = {
      pending: (limit: number, now: number, inFlight: ReadonlySet<number>) => [...entries.values()].filter((e) => !inFlight.has(e.seq) && (e.notBefore ?? 0) <= now).slice(0, limit),
      markSending: async (read: readonly DeliveryEntry[]) => read.filter((e) => entries.has(e.seq)),
      complete: async (done: readonly DeliveryOutcome<DeliveryEntry>[]) => {
        for (const o of done) {
          outcomes.push(o);
          if (o.status === "error" && o.retryAt !== undefined) entries.set(o.entry.seq, { ...o.entry, attempts: (o.entry.attempts ?? 0) + 1, notBefore: o.retryAt });
          else entries.delete(o.entry.seq);
        }
      },
      nextRetryAt: () => {
        const next = Math.min(...[...entries.values()].map((e) => e.notBefore ?? Infinity));
        return next === Infinity ? undefined : next;
      },
    };
    const hook = new WebhookDestination("hook", `${base}/hooks`, undefined, {}, 5000);
    // No jitter: the exports of a failed batch are due again together (with it, each its own instant,
    // and a retry could take some of them only: not a split, but it looks like one).
    const delivery = new Delivery(hook, store, { completed: () => undefined, failed: (e) => { throw e; } }, { ...DEFAULT_DELIVERY_OPTIONS, baseBackoffMs: 5, maxBackoffMs: 20, maxAttempts: 2, random: () => 1 });
    delivery.start();
    while (requests < 6) await new Promise((r) => setTimeout(r, 10));
    // Meanwhile the destination names its problem, and the batch went whole each time.
    const named = hook.problem?.() ?? null;
    accepted = true;
    for (let waited = 0; entries.size > 0 && waited < 10_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    await delivery.stop();
    const failures = outcomes.filter((o) => o.status === "error");
    expect({
      left: entries.size,
      received: received.sort((a, b) => a - b),
      deadLetters: failures.filter((o) => o.retryAt === undefined).length,
      eachFailureWhole: failures.length === 8 * Math.floor(failures.length / 8),
      named,
      problem: hook.problem?.() ?? null,
    }).toEqual({ left: 0, received: [1, 2, 3, 4, 5, 6, 7, 8], deadLetters: 0, eachFailureWhole: true, named: `POST ${base}/hooks answered 401 (its credentials are refused)`, problem: null });
    expect(outcomes.filter((o) => o.status === "ok").length).toBe(8);
  });
});
