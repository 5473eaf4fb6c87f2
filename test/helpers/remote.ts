// A real local webhook receiver for tests: applies exports the way a well-behaved destination does
// (upsert by record, delete on toDelete, update-only when asked) and can be told to fail.
import { createServer, type IncomingMessage, type Server } from "node:http";
import { signBody, SIGNATURE_HEADER } from "../../connectors/webhook/webhook.js";
import { freePort } from "../services/process.js";

export interface RemoteRecord {
  properties: Record<string, unknown>;
  groups: string[];
}

export interface Receiver {
  url: string;
  records: Map<string, RemoteRecord>;
  requests: { status: number; exports: number; idempotencyKey: string; signed: boolean }[];
  /** Decides the status of the next request (200 applies the batch). */
  respond: (request: IncomingMessage) => { status: number; headers?: Record<string, string> };
  close(): Promise<void>;
}

interface WireExport {
  seq: number;
  recordId: string;
  newRecordProperties: Record<string, unknown>;
  newGroups: string[];
  toDelete: boolean;
  updateOnly: boolean;
}

export async function startReceiver(secret?: string): Promise<Receiver> {
  const port = await freePort();
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hooks`,
    records: new Map(),
    requests: [],
    respond: () => ({ status: 200 }),
    close: async () => undefined,
  };
  const server: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const { status, headers } = receiver.respond(request);
      const signature = request.headers[SIGNATURE_HEADER];
      const signed = secret !== undefined && signature === signBody(secret, body);
      const parsed = JSON.parse(body) as { exports: WireExport[] };
      receiver.requests.push({ status, exports: parsed.exports.length, idempotencyKey: String(request.headers["idempotency-key"] ?? ""), signed });
      if (status === 200 && (secret === undefined || signed)) {
        for (const e of parsed.exports) {
          if (e.toDelete) receiver.records.delete(e.recordId);
          else if (!e.updateOnly || receiver.records.has(e.recordId)) receiver.records.set(e.recordId, { properties: e.newRecordProperties, groups: e.newGroups });
        }
      }
      response.writeHead(secret !== undefined && !signed ? 401 : status, { "content-type": "application/json", ...headers });
      response.end(JSON.stringify({ results: parsed.exports.map((e) => ({ seq: e.seq, status: e.updateOnly && !receiver.records.has(e.recordId) ? "info" : "ok" })) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  receiver.close = () => new Promise((resolve) => server.close(() => resolve()));
  return receiver;
}

/**
 * A config streaming the test database's `users (id, email)` table to a webhook at `url` (destination
 * `crm`, sync mode, mapping user_id and email), as YAML.
 */
export function usersToWebhook(databaseUrl: string, url: string): string {
  return `
- { class: app, id: shop, type: postgres, options: { connectionString: "${databaseUrl}" } }
- { class: app, id: hooks, type: webhook, options: { url: "${url}" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, sourceId: users_table, options: { column: email } }
- { class: destination, id: crm, type: webhook, appId: hooks, modelId: users, collection: model, syncMode: sync, options: {}, mapping: { id: user_id, email: email } }
`;
}
