// Checks of properties: their source, and their aggregation (core/aggregates.ts holds the only check
// of aggregation methods, sort columns and filters, shared with the aggregates themselves).
import { aggregateProblems } from "../../aggregates.js";
import { aggregateSpecOf } from "../../domain.js";
import type { PropertyConfig } from "../schema.js";
import type { PrimaryKey } from "../types.js";
import type { Validation } from "../validation.js";

export function checkProperties(v: Validation, primaryKeys: Readonly<Record<string, PrimaryKey>>): void {
  const primarySourceIds = new Set(Object.values(primaryKeys).map((k) => k.sourceId));
  for (const entry of v.valid("property")) {
    const property = entry.value as unknown as PropertyConfig;
    v.ref(entry, ["sourceId"], property.sourceId, "source");
    const problems = aggregateProblems(aggregateSpecOf(property), {
      type: property.type,
      unique: property.unique === true,
      ...(primarySourceIds.has(property.sourceId) ? { primarySourceId: property.sourceId } : {}),
    });
    for (const p of problems) v.report(entry, p.field, p.message);
  }
}
