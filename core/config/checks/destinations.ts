// Checks of destinations: their app (of the type the destination type writes through), their model,
// the tracked group of a group collection, mappings and group memberships of that model, and each
// destination type's own checks.
import type { DestinationConfig, GroupConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkDestinations(v: Validation): void {
  const context = v.context();
  for (const entry of v.valid("destination")) {
    const destination = entry.value as unknown as DestinationConfig;
    const spec = v.catalog.destinations.get(destination.type);
    v.checkComponentRefs(entry, destination, spec?.appType);
    if (destination.collection === "group") {
      if (destination.groupId === undefined) v.report(entry, "groupId", "is required when collection is group");
      else if (v.ref(entry, ["groupId"], destination.groupId, "group")) {
        const group = v.get<GroupConfig>("group", destination.groupId);
        if (group && group.modelId !== destination.modelId) {
          v.report(entry, "groupId", `group "${destination.groupId}" belongs to model "${group.modelId}", not "${destination.modelId}"`);
        }
      }
    } else if (destination.groupId !== undefined) {
      v.report(entry, "groupId", "only applies when collection is group");
    }
    if (Object.keys(destination.mapping).length === 0) v.report(entry, "mapping", "maps no property");
    for (const [remote, propertyId] of Object.entries(destination.mapping)) {
      v.propertyOfModel(entry, ["mapping", remote], propertyId, destination.modelId);
    }
    for (const [remote, groupId] of Object.entries(destination.destinationGroupMemberships ?? {})) {
      if (!v.ref(entry, ["destinationGroupMemberships", remote], groupId, "group")) continue;
      const group = v.get<GroupConfig>("group", groupId);
      if (group && group.modelId !== destination.modelId) {
        v.report(entry, ["destinationGroupMemberships", remote], `group "${groupId}" belongs to model "${group.modelId}", not "${destination.modelId}"`);
      }
    }
    if (spec?.check) v.reportAll(entry, spec.check(v.located<DestinationConfig>(entry), context));
  }
}
