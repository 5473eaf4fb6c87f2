// Export planning (pure): what a destination must receive after a record changed, under its sync
// mode, relative to what the destination last acknowledged. Exports carry old and new mapped
// properties and group names; nothing is planned when nothing mapped changed.
import type { DestinationDef, RecordValueMap } from "./domain.js";
import { compareStrings, sameValue } from "./values.js";
import type { PropertyValue } from "./vocabulary.js";

export type ExportedProperties = Record<string, PropertyValue | PropertyValue[]>;

/** What a destination holds for a record: mapped remote fields and mapped group names. */
export interface RemoteState {
  properties: ExportedProperties;
  groups: string[];
}

export interface ExportPlan {
  destinationId: string;
  recordId: string;
  oldRecordProperties: ExportedProperties;
  newRecordProperties: ExportedProperties;
  oldGroups: string[];
  newGroups: string[];
  toDelete: boolean;
  /** enrich: the destination only updates a record it already has, never creates one. */
  updateOnly: boolean;
  /** Source commit time of the newest change in this export (for end-to-end latency). */
  commitTime: number;
}

/** A record as the core sees it after a batch: its values and groups, or null when deleted. */
export interface RecordSnapshot {
  values: RecordValueMap;
  groups: readonly string[];
}

/**
 * A destination's mapping and group memberships as arrays, made once per destination object: the
 * memberships ordered by remote name, so the groups of a remote state come out sorted.
 */
const COMPILED = new WeakMap<DestinationDef, { mapping: readonly (readonly [string, string])[]; memberships: readonly (readonly [string, string])[] }>();
function compiled(destination: DestinationDef) {
  let entry = COMPILED.get(destination);
  if (!entry) {
    const memberships = Object.entries(destination.groupMemberships).sort(([a], [b]) => compareStrings(a, b));
    entry = { mapping: Object.entries(destination.mapping), memberships };
    COMPILED.set(destination, entry);
  }
  return entry;
}

export function remoteStateOf(destination: DestinationDef, record: RecordSnapshot): RemoteState {
  const { mapping, memberships } = compiled(destination);
  const properties: ExportedProperties = {};
  for (let i = 0; i < mapping.length; i++) {
    const [remote, propertyId] = mapping[i] as readonly [string, string];
    properties[remote] = record.values[propertyId] ?? null;
  }
  const groups: string[] = [];
  for (let i = 0; i < memberships.length; i++) {
    const [remote, groupId] = memberships[i] as readonly [string, string];
    if (record.groups.includes(groupId)) groups.push(remote);
  }
  return { properties, groups };
}

function inScope(destination: DestinationDef, record: RecordSnapshot | null): boolean {
  if (!record) return false;
  return destination.collection === "model" || (destination.groupId !== undefined && record.groups.includes(destination.groupId));
}

function sameState(a: RemoteState, b: RemoteState): boolean {
  if (a.groups.length !== b.groups.length) return false;
  for (let i = 0; i < a.groups.length; i++) if (a.groups[i] !== b.groups[i]) return false;
  let keys = 0;
  for (const key in a.properties) {
    if (!Object.hasOwn(a.properties, key)) continue;
    keys += 1;
    if (!sameValue(a.properties[key], b.properties[key])) return false;
  }
  return keys === ownKeyCount(b.properties);
}

/** Object.keys(object).length without the array. */
function ownKeyCount(object: object): number {
  let n = 0;
  for (const key in object) if (Object.hasOwn(object, key)) n += 1;
  return n;
}

/**
 * Plans the export of `record` (null = deleted) to `destination`, given `remote`, the state the
 * destination last acknowledged (null = it never received this record). Returns null when the
 * destination needs nothing.
 */
export function planExport(
  destination: DestinationDef,
  recordId: string,
  record: RecordSnapshot | null,
  remote: RemoteState | null,
  commitTime: number,
): ExportPlan | null {
  const old: RemoteState = remote ?? { properties: {}, groups: [] };
  const plan = (newRecordProperties: ExportedProperties, newGroups: string[], toDelete: boolean, updateOnly: boolean): ExportPlan => ({
    destinationId: destination.id,
    recordId,
    oldRecordProperties: old.properties,
    oldGroups: old.groups,
    commitTime,
    newRecordProperties,
    newGroups,
    toDelete,
    updateOnly,
  });
  if (inScope(destination, record) && record) {
    const next = remoteStateOf(destination, record);
    if (remote && sameState(remote, next)) return null;
    return plan(next.properties, next.groups, false, destination.syncMode === "enrich");
  }
  // Out of scope (deleted, or not in the tracked group): only a record the destination has matters.
  if (!remote) return null;
  switch (destination.syncMode) {
    case "sync":
      return plan(old.properties, [], true, false);
    case "additive":
      // Additive never deletes: the record stays remotely without its groups.
      if (remote.groups.length === 0) return null;
      return plan(old.properties, [], false, false);
    case "enrich":
      return null;
  }
}

/** The remote state after the destination acknowledged `plan` (null = the record is gone remotely). */
export function remoteStateAfter(plan: ExportPlan): RemoteState | null {
  return plan.toDelete ? null : { properties: plan.newRecordProperties, groups: plan.newGroups };
}
