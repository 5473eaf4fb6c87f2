// Checks of models: each has exactly one primary source, the one whose mapping targets a unique
// property of its own; that property is the model's primary key.
import type { PropertyConfig, SourceConfig } from "../schema.js";
import type { PrimaryKey } from "../types.js";
import type { Validation } from "../validation.js";

export function checkModels(v: Validation): Record<string, PrimaryKey> {
  const primaryKeys: Record<string, PrimaryKey> = {};
  const modelsWithInvalidSources = new Set(v.all("source").filter((e) => e.value === undefined).map((e) => String(e.raw.value.modelId)));
  for (const entry of v.valid("model")) {
    const modelId = entry.id;
    // A source that failed its own checks may be the primary one: do not guess, its errors say enough.
    if (modelsWithInvalidSources.has(modelId)) continue;
    const candidates: PrimaryKey[] = [];
    for (const sourceEntry of v.valid("source")) {
      const source = sourceEntry.value as unknown as SourceConfig;
      if (source.modelId !== modelId) continue;
      for (const [column, propertyId] of Object.entries(source.mapping)) {
        const property = v.get<PropertyConfig>("property", propertyId);
        if (property?.unique && property.sourceId === source.id) {
          candidates.push({ sourceId: source.id, propertyId, column });
          break;
        }
      }
    }
    if (candidates.length === 0) {
      v.report(entry, "(model)", "has no primary key: no source maps a column to a unique property of its own");
    } else if (candidates.length > 1) {
      v.report(entry, "(model)", `has ${candidates.length} primary sources (${candidates.map((c) => c.sourceId).join(", ")}); exactly one source may map to a unique property of its own`);
    } else if (candidates[0]) {
      primaryKeys[modelId] = candidates[0];
    }
  }
  return primaryKeys;
}
