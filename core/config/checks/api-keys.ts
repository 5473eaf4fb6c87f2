// Checks of API keys: permissions exactly for specific keys, and no two keys alike.
import type { ApiKeyConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkApiKeys(v: Validation): void {
  const keys = new Map<string, string>();
  for (const entry of v.valid("apiKey")) {
    const apiKey = entry.value as unknown as ApiKeyConfig;
    if (apiKey.type === "specific" && (apiKey.permissions ?? []).length === 0) v.report(entry, "permissions", "is required for a specific key");
    if (apiKey.type !== "specific" && apiKey.permissions !== undefined) v.report(entry, "permissions", "only applies to a specific key (a full key has every permission)");
    const other = keys.get(apiKey.apiKey);
    if (other !== undefined) v.report(entry, "apiKey", `is the same key as apiKey "${other}"`);
    keys.set(apiKey.apiKey, apiKey.id);
  }
}
