// What `grouparoo-stream rebuild` and `POST /api/v1/runs` ask for, as Runs: a property recomputed
// (its source read again when it is the primary source's), a source read again, a group evaluated
// over every record, a destination's exports planned again, or all of them. Pure: the domain in, the
// Run specs out (or why not).
import type { RunSpec } from "./definitions.js";
import type { Domain } from "./domain.js";

/** What to rebuild, by id. */
export interface RebuildTargets {
  property?: string | undefined;
  source?: string | undefined;
  group?: string | undefined;
  destination?: string | undefined;
  all?: boolean | undefined;
}

/** Why nothing was asked for: an id the config does not have (`unknown` says of what), or no target. */
export interface RebuildRefusal {
  message: string;
  unknown?: "property" | "source" | "group" | "destination";
}

/** The Runs that rebuild what the options name, from the source data. */
export function rebuildRequests(domain: Domain, options: RebuildTargets): { spec: RunSpec; target: string }[] | RebuildRefusal {
  const requests: { spec: RunSpec; target: string }[] = [];
  const reread = (sourceId: string) => {
    const source = domain.sources.get(sourceId);
    if (source) requests.push({ spec: { kind: "reread", sourceId, modelId: source.modelId }, target: `source ${sourceId}` });
  };
  if (options.property !== undefined) {
    const property = domain.properties.get(options.property);
    if (!property) return { message: `no property "${options.property}" in the config`, unknown: "property" };
    if (domain.sources.get(property.sourceId)?.primary) reread(property.sourceId);
    else requests.push({ spec: { kind: "rebuild", sourceId: property.sourceId, modelId: property.modelId, propertyIds: [property.id] }, target: `property ${property.id}` });
  }
  if (options.source !== undefined) {
    if (!domain.sources.has(options.source)) return { message: `no source "${options.source}" in the config`, unknown: "source" };
    reread(options.source);
  }
  if (options.group !== undefined) {
    const group = domain.groups.get(options.group);
    if (!group) return { message: `no group "${options.group}" in the config`, unknown: "group" };
    requests.push({ spec: { kind: "backfill", groupId: group.id, modelId: group.modelId }, target: `group ${group.id}` });
  }
  if (options.destination !== undefined) {
    const destination = domain.destinations.get(options.destination);
    if (!destination) return { message: `no destination "${options.destination}" in the config`, unknown: "destination" };
    requests.push({ spec: { kind: "export", destinationId: destination.id, modelId: destination.modelId, reset: false }, target: `destination ${destination.id}` });
  }
  if (options.all) {
    for (const id of domain.sources.keys()) reread(id);
    for (const group of domain.groups.values()) requests.push({ spec: { kind: "backfill", groupId: group.id, modelId: group.modelId }, target: `group ${group.id}` });
    for (const d of domain.destinations.values()) requests.push({ spec: { kind: "export", destinationId: d.id, modelId: d.modelId, reset: false }, target: `destination ${d.id}` });
  }
  if (requests.length === 0) return { message: options.all ? "nothing to rebuild: the config has no source, group or destination" : "name what to rebuild: --property, --source, --group, --destination or --all" };
  // Each Run once: a primary property's source named too (--property email --source users_table) was
  // read twice, and rebuild --all --group g asked for g's backfill twice.
  const seen = new Set<string>();
  return requests.filter((r) => {
    const key = JSON.stringify(r.spec);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
