// The webhook app: an HTTP endpoint (base URL, HMAC secret, headers, timeout) its destinations POST to.
import { Type, type Static } from "@sinclair/typebox";
import { StringMap } from "../../core/config/schema.js";
import type { AppComponent } from "../types.js";

export const WebhookAppOptions = Type.Object(
  {
    url: Type.String({ pattern: "^https?://", description: "Base URL exports are POSTed to." }),
    secret: Type.Optional(Type.String({ minLength: 1, description: "HMAC-SHA256 key for the signature header (use ${VAR})." })),
    headers: Type.Optional(StringMap("Extra request headers.")),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, default: 10000, description: "Request timeout in ms." })),
  },
  { additionalProperties: false },
);
export type WebhookAppOptions = Static<typeof WebhookAppOptions>;

/** Where a webhook app points: its URL without credentials and query (a token there is how it is reached, and a secret). */
function endpointOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url;
  }
}

export const webhookApp: AppComponent = { type: "webhook", options: WebhookAppOptions, identity: (app) => ({ url: endpointOf((app.options as WebhookAppOptions).url) }) };
