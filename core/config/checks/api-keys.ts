// Checks of API keys: the secret comes from the environment (a `${VAR}` reference, never a literal in
// a file), a specific key says what it may do, a full key has nothing to narrow, no topic twice, and
// no two keys alike.
import type { ApiKeyConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkApiKeys(v: Validation): void {
  const keys = new Map<string, string>();
  for (const entry of v.valid("apiKey")) {
    const apiKey = entry.value as unknown as ApiKeyConfig;
    if (!(entry.raw.fromEnvironment ?? []).includes("apiKey")) {
      v.report(entry, "apiKey", "must be a ${VAR} reference to an environment variable (a literal key in a config file is refused: anyone who reads the file could use it)");
    }
    const permissions = apiKey.permissions ?? [];
    if (apiKey.type === "specific") {
      if (permissions.length === 0 && !apiKey.permissionAllRead && !apiKey.permissionAllWrite) v.report(entry, "permissions", "is required for a specific key (or permissionAllRead / permissionAllWrite)");
    } else {
      for (const field of ["permissions", "permissionAllRead", "permissionAllWrite"] as const) {
        if (apiKey[field] !== undefined) v.report(entry, field, "only applies to a specific key (a full key has every permission)");
      }
    }
    const seen = new Set<string>();
    permissions.forEach((p, i) => {
      if (seen.has(p.topic)) v.report(entry, ["permissions", i, "topic"], `topic "${p.topic}" is listed twice`);
      seen.add(p.topic);
    });
    const other = keys.get(apiKey.apiKey);
    if (other !== undefined) v.report(entry, "apiKey", `is the same key as apiKey "${other}"`);
    keys.set(apiKey.apiKey, apiKey.id);
  }
}
