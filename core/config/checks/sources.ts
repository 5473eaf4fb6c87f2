// Checks of source objects: their app (of the type the source type reads through), their model, a
// mapping onto unique properties of that model, and each source type's own checks.
import type { PropertyConfig, SourceConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkSources(v: Validation): void {
  const context = v.context();
  for (const entry of v.valid("source")) {
    const source = entry.value as unknown as SourceConfig;
    const spec = v.catalog.sources.get(source.type);
    v.checkComponentRefs(entry, source, spec?.appType);
    if (Object.keys(source.mapping).length === 0) v.report(entry, "mapping", "maps no column; map a source column to a unique property");
    for (const [column, propertyId] of Object.entries(source.mapping)) {
      if (!v.ref(entry, ["mapping", column], propertyId, "property")) continue;
      const property = v.get<PropertyConfig>("property", propertyId);
      if (!property) continue;
      if (!property.unique) v.report(entry, ["mapping", column], `targets property "${propertyId}", which is not unique`);
      const model = v.modelOfProperty(property);
      if (model !== undefined && model !== source.modelId) {
        v.report(entry, ["mapping", column], `targets property "${propertyId}" of model "${model}", not of model "${source.modelId}"`);
      }
    }
    if (spec?.check) v.reportAll(entry, spec.check(v.located<SourceConfig>(entry), context));
  }
}
