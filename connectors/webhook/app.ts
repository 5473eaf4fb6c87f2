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
export function endpointOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url;
  }
}

export const webhookApp: AppComponent = { type: "webhook", options: WebhookAppOptions, identity: (app) => ({ url: endpointOf((app.options as WebhookAppOptions).url) }) };

/**
 * A URL as logs and errors may name it: no user or password, each query parameter's value and the
 * fragment replaced by [redacted] (a token in the query is a secret). Text that is not a URL (a
 * relative redirect's Location) has its query and fragment redacted alike.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return redactQuery(url);
  }
  return `${u.protocol}//${u.host}${u.pathname}${redactQuery(u.search)}${u.hash ? "#[redacted]" : ""}`;
}

/** `?a=1&b=2` (or a path with it) as `?a=[redacted]&b=[redacted]`; the fragment goes too. */
function redactQuery(text: string): string {
  const hash = text.indexOf("#");
  const withoutHash = hash < 0 ? text : `${text.slice(0, hash)}`;
  const mark = withoutHash.indexOf("?");
  if (mark < 0) return `${withoutHash}${hash < 0 ? "" : "#[redacted]"}`;
  const query = withoutHash
    .slice(mark + 1)
    .split("&")
    .filter((pair) => pair !== "")
    .map((pair) => `${pair.split("=")[0] ?? ""}=[redacted]`)
    .join("&");
  return `${withoutHash.slice(0, mark)}${query ? `?${query}` : ""}${hash < 0 ? "" : "#[redacted]"}`;
}

/** decodeURIComponent, or the text as it is when it is not valid percent-encoding. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

/**
 * The secrets a URL carries (its user, password, query values and fragment, as written and decoded),
 * longest first, to scrub them from text that may quote it (an HTTP client's error message).
 */
export function urlSecrets(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [];
  }
  const secrets = [u.username, u.password];
  for (const pair of u.search.slice(1).split("&")) if (pair.includes("=")) secrets.push(pair.slice(pair.indexOf("=") + 1));
  if (u.hash.length > 1) secrets.push(u.hash.slice(1));
  // Values shorter than 4 characters (`?v=1`) are no secrets worth replacing everywhere in a message
  // (every "1" would go); the URL itself is still named redacted.
  return [...new Set(secrets.flatMap((s) => [s, decoded(s)]).filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
}

/** `text` with the URL named as redactUrl names it and any secret of it that is still there replaced by [redacted]. */
export function scrubUrl(text: string, url: string): string {
  let out = text.split(url).join(redactUrl(url));
  for (const secret of urlSecrets(url)) out = out.split(secret).join("[redacted]");
  return out;
}
