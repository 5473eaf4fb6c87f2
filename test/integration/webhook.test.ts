// The webhook destination against a real HTTP server on loopback: what each answer makes of a batch
// (per-export results, all ok, retried with Retry-After, rejected as a whole), the headers it sends,
// and what it does on a refused connection, a timeout and a redirect (not followed: the body and its
// signature go only to the configured address).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryError, type DeliverableExport } from "../../connectors/types.js";
import { signBody, WebhookDestination } from "../../connectors/webhook/webhook.js";
import { pino } from "pino";
import { freePort } from "../services/process.js";

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

const exportOf = (seq: number): DeliverableExport => ({
  seq,
  destinationId: "hook",
  recordId: `r${seq}`,
  oldRecordProperties: {},
  newRecordProperties: { id: seq },
  oldGroups: [],
  newGroups: ["vip"],
  toDelete: false,
  updateOnly: false,
  commitTime: 1_700_000_000_000 + seq,
});

describe("webhook destination", () => {
  let handler: Handler = (_q, _b, r) => r.end();
  const seen: { url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      seen.push({ url: request.url ?? "", headers: request.headers, body });
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
  const destination = (timeoutMs = 5000) => new WebhookDestination("hook", `${base}/hooks`, "s3cret", { "x-team": "crm" }, timeoutMs);
  const rejection = async (promise: Promise<unknown>): Promise<DeliveryError> => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeliveryError);
    return error as DeliveryError;
  };

  it("POSTs the batch signed, with its idempotency key and the app's headers, and takes per-export results", async () => {
    seen.length = 0;
    handler = (_q, _b, r) => r.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ results: [{ seq: 1, status: "ok" }, { seq: 2, status: "error", message: "no such list" }] }));
    const hook = destination();
    expect(await hook.deliver([exportOf(1), exportOf(2)])).toEqual([{ seq: 1, status: "ok" }, { seq: 2, status: "error", message: "no such list" }]);
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request?.url).toBe("/hooks");
    expect(JSON.parse(request?.body ?? "")).toEqual({ destinationId: "hook", exports: [exportOf(1), exportOf(2)] });
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(request?.headers["x-team"]).toBe("crm");
    expect(request?.headers["x-grouparoo-signature"]).toBe(signBody("s3cret", request?.body ?? ""));
    expect(request?.headers["idempotency-key"]).toMatch(/^[0-9a-f]{64}$/);
    // The same batch again (a retry) carries the same key.
    await hook.deliver([exportOf(1), exportOf(2)]);
    expect(seen[1]?.headers["idempotency-key"]).toBe(request?.headers["idempotency-key"]);
    expect(hook.ready()).toBe(true);
  });

  it("counts a 2xx without results as every export ok", async () => {
    handler = (_q, _b, r) => r.writeHead(204).end();
    expect(await destination().deliver([exportOf(3), exportOf(4)])).toEqual([{ seq: 3, status: "ok" }, { seq: 4, status: "ok" }]);
  });

  it("retries a 429 no sooner than its Retry-After, and a 5xx", async () => {
    handler = (_q, _b, r) => r.writeHead(429, { "retry-after": "7" }).end("slow down");
    const limited = await rejection(destination().deliver([exportOf(5)]));
    expect({ message: limited.message, retryable: limited.retryable, retryAfterMs: limited.retryAfterMs }).toEqual({ message: `POST ${base}/hooks answered 429`, retryable: true, retryAfterMs: 7000 });
    handler = (_q, _b, r) => r.writeHead(503).end();
    const down = await rejection(destination().deliver([exportOf(5)]));
    expect({ message: down.message, retryable: down.retryable, retryAfterMs: down.retryAfterMs }).toEqual({ message: `POST ${base}/hooks answered 503`, retryable: true, retryAfterMs: undefined });
  });

  it("rejects a batch answered 4xx as a whole, naming the answer", async () => {
    handler = (_q, _b, r) => r.writeHead(422).end("field id is required");
    const error = await rejection(destination().deliver([exportOf(6)]));
    expect({ message: error.message, retryable: error.retryable }).toEqual({ message: `POST ${base}/hooks answered 422: field id is required`, retryable: false });
  });

  it("follows no redirect: the batch is rejected naming where it pointed, and nothing is sent there", async () => {
    seen.length = 0;
    handler = (request, _b, r) => (request.url === "/hooks" ? r.writeHead(307, { location: `${base}/elsewhere` }).end() : r.writeHead(200).end());
    const error = await rejection(destination().deliver([exportOf(7)]));
    expect({ message: error.message, retryable: error.retryable }).toEqual({
      message: `POST ${base}/hooks answered 307 (a redirect to ${base}/elsewhere; redirects are not followed: set the app's url to the final address)`,
      retryable: false,
    });
    expect(seen.map((s) => s.url)).toEqual(["/hooks"]);
  });

  it("retries a refused connection and a timeout, and says it is not ready meanwhile", async () => {
    const closed = new WebhookDestination("hook", `http://127.0.0.1:${await freePort()}/hooks`, undefined, {}, 5000);
    const refused = await rejection(closed.deliver([exportOf(8)]));
    expect(refused.retryable).toBe(true);
    expect(refused.message).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/hooks failed: .*ECONNREFUSED/);
    expect(closed.ready()).toBe(false);

    handler = (_q, _b, r) => setTimeout(() => r.writeHead(200).end(), 1000);
    const slow = destination(100);
    const timedOut = await rejection(slow.deliver([exportOf(9)]));
    expect(timedOut.retryable).toBe(true);
    expect(timedOut.message).toMatch(new RegExp(`^POST ${base}/hooks failed: .*(timeout|aborted)`, "i"));
    expect(slow.ready()).toBe(false);
    // Answered again: ready again.
    handler = (_q, _b, r) => r.writeHead(200).end();
    await slow.deliver([exportOf(10)]);
    expect(slow.ready()).toBe(true);
  });

  it("names its url in every error without the credentials and with the query's values redacted", async () => {
    const secretUrl = (at: string) => `${at.replace("http://", "http://hookuser:hookpass123@")}/hooks?token=tok456secret&team=crm`;
    const secrets = ["hookuser", "hookpass123", "tok456secret"];
    const shown = `${base}/hooks?token=[redacted]&team=[redacted]`;
    const hook = new WebhookDestination("hook", secretUrl(base), undefined, {}, 5000);
    const messages: string[] = [];
    // 5xx, 4xx (whose body quotes the token), a redirect to a url with credentials and a token, refused.
    handler = (_q, _b, r) => r.writeHead(500).end();
    messages.push((await rejection(hook.deliver([exportOf(11)]))).message);
    expect(messages[0]).toBe(`POST ${shown} answered 500`);
    handler = (_q, _b, r) => r.writeHead(401).end("bad token tok456secret for hookuser");
    messages.push((await rejection(hook.deliver([exportOf(12)]))).message);
    expect(messages[1]).toBe(`POST ${shown} answered 401 (its credentials are refused): bad token [redacted] for [redacted]`);
    handler = (_q, _b, r) => r.writeHead(302, { location: `http://other:otherpass@127.0.0.1:1/next?sig=abc123` }).end();
    messages.push((await rejection(hook.deliver([exportOf(13)]))).message);
    expect(messages[2]).toContain(`POST ${shown} answered 302 (a redirect to http://127.0.0.1:1/next?sig=[redacted];`);
    expect(messages[2]).not.toMatch(/otherpass|abc123/);
    const closed = new WebhookDestination("hook", secretUrl(`http://127.0.0.1:${await freePort()}`), undefined, {}, 5000);
    messages.push((await rejection(closed.deliver([exportOf(14)]))).message);
    expect(messages[3]).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/hooks\?token=\[redacted\]&team=\[redacted\] failed: /);
    for (const message of messages) for (const secret of secrets) expect(message).not.toContain(secret);
  });

  it("takes an answer with a status it does not know as malformed: retried as possibly landed, logged at error naming the status and the seq", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const hook = new WebhookDestination("hook", `${base}/hooks`, undefined, {}, 5000, logger);
    handler = (_q, _b, r) => r.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ results: [{ seq: 15, status: "ok" }, { seq: 16, status: "success" }] }));
    const error = await rejection(hook.deliver([exportOf(15), exportOf(16)]));
    expect({ message: error.message, retryable: error.retryable }).toEqual({
      message: `POST ${base}/hooks answered 200 with a malformed result: status "success" for seq 16 (expected {seq, status: "ok" | "info" | "error"}); the batch is retried as possibly landed`,
      retryable: true,
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, msg: "the webhook's answer is malformed: an unknown export status", seq: 16, status: '"success"', error: error.message });
    // An entry without a seq is malformed alike.
    handler = (_q, _b, r) => r.writeHead(200).end(JSON.stringify({ results: [{ status: "ok" }] }));
    expect((await rejection(hook.deliver([exportOf(17)]))).message).toContain("malformed result: status \"ok\" for seq undefined");
  });
});
