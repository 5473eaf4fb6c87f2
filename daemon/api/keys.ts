// API keys (the config's apiKey objects): each secret is kept only as its SHA-256 digest, a key
// presented is digested and compared with every stored digest in constant time (timingSafeEqual, and
// no early exit, so the time taken says nothing about which key or how much of one matched), and what
// a key may do is its type's: full = read and write on every topic; specific = permissionAllRead,
// permissionAllWrite and its per-topic permissions. The secret itself is never kept, logged or sent.
import { createHash, hash, timingSafeEqual } from "node:crypto";
import { API_TOPICS, type ApiKeyConfig, type ApiTopic } from "../../core/config/schema.js";

export type Access = "read" | "write";

export interface ApiKey {
  id: string;
  name: string;
  type: "full" | "specific";
  read: ReadonlySet<ApiTopic>;
  write: ReadonlySet<ApiTopic>;
}

/** A key as kept: what it may do and its secret's digest (what the API thread is handed, api/thread.ts). */
export interface StoredKey extends ApiKey {
  digest: Uint8Array;
}

// crypto.hash (Node 20.12+): one call, no Hash object per request.
const digestOf = (secret: string): Buffer => (typeof hash === "function" ? hash("sha256", secret, "buffer") : createHash("sha256").update(secret, "utf8").digest());

export class ApiKeys {
  private keys: StoredKey[];

  /** Keys as another thread kept them (digests(), structured-cloned). */
  static fromDigests(keys: readonly StoredKey[]): ApiKeys {
    const made = new ApiKeys([]);
    made.keys = keys.map((k) => ({ ...k }));
    return made;
  }

  constructor(configs: readonly ApiKeyConfig[]) {
    this.keys = configs.map((c) => {
      const full = (c.type ?? "full") === "full";
      const read = new Set<ApiTopic>(full || c.permissionAllRead ? API_TOPICS : []);
      const write = new Set<ApiTopic>(full || c.permissionAllWrite ? API_TOPICS : []);
      for (const p of c.permissions ?? []) {
        if (p.read) read.add(p.topic);
        if (p.write) write.add(p.topic);
      }
      return { id: c.id, name: c.name ?? c.id, type: full ? "full" : "specific", read, write, digest: digestOf(c.apiKey) };
    });
  }

  get size(): number {
    return this.keys.length;
  }

  /** The key whose secret this is, or undefined; every stored key is compared, in constant time. */
  authenticate(secret: string): ApiKey | undefined {
    const digest = digestOf(secret);
    let found: StoredKey | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(key.digest, digest) && !found) found = key;
    }
    return found === undefined ? undefined : { id: found.id, name: found.name, type: found.type, read: found.read, write: found.write };
  }

  /** The keys with their digests, for the API thread only (never shown, logged or sent). */
  digests(): StoredKey[] {
    return this.keys.map((k) => ({ ...k }));
  }

  /** The keys as the API may show them: never their secrets or digests. */
  list(): ApiKey[] {
    return this.keys.map(({ id, name, type, read, write }) => ({ id, name, type, read, write }));
  }
}

/** Whether a key may do `access` on `topic`; write does not imply read, as in Grouparoo. */
export function permits(key: ApiKey, topic: ApiTopic, access: Access): boolean {
  return (access === "read" ? key.read : key.write).has(topic);
}

/**
 * The secret a request presents: `Authorization: Bearer <key>`, or HTTP Basic with the key as the
 * password (any user name), which is how a browser presents one for the status page.
 */
export function presentedSecret(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const match = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(authorization);
  if (!match?.[2]) return undefined;
  if (match[1]?.toLowerCase() === "bearer") return match[2];
  const decoded = Buffer.from(match[2], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** How the API is served for a config with `keys` keys: with keys, without (--api-insecure), or not at all. */
export function apiMode(keys: number, insecure: boolean): "keys" | "insecure" | "off" {
  return keys > 0 ? "keys" : insecure ? "insecure" : "off";
}
