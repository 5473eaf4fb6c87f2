// Export planning (pure): what a destination must receive after a record changed, under its sync
// mode, relative to what the destination last acknowledged. Exports carry old and new mapped
// properties and group names; nothing is planned when nothing mapped changed.
import type { DestinationDef, RecordValueMap } from "./domain.js";
import { sameValue } from "./values.js";
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

export function remoteStateOf(destination: DestinationDef, record: RecordSnapshot): RemoteState {
  const properties: ExportedProperties = {};
  for (const [remote, propertyId] of Object.entries(destination.mapping)) properties[remote] = record.values[propertyId] ?? null;
  const groups: string[] = [];
  for (const [remote, groupId] of Object.entries(destination.groupMemberships)) if (record.groups.includes(groupId)) groups.push(remote);
  groups.sort();
  return { properties, groups };
}

function inScope(destination: DestinationDef, record: RecordSnapshot | null): boolean {
  if (!record) return false;
  return destination.collection === "model" || (destination.groupId !== undefined && record.groups.includes(destination.groupId));
}

function sameState(a: RemoteState, b: RemoteState): boolean {
  if (a.groups.length !== b.groups.length || a.groups.some((g, i) => g !== b.groups[i])) return false;
  const keys = Object.keys(a.properties);
  if (keys.length !== Object.keys(b.properties).length) return false;
  return keys.every((k) => sameValue(a.properties[k], b.properties[k]));
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
  const base = { destinationId: destination.id, recordId, oldRecordProperties: old.properties, oldGroups: old.groups, commitTime };
  if (inScope(destination, record) && record) {
    const next = remoteStateOf(destination, record);
    if (remote && sameState(remote, next)) return null;
    return { ...base, newRecordProperties: next.properties, newGroups: next.groups, toDelete: false, updateOnly: destination.syncMode === "enrich" };
  }
  // Out of scope (deleted, or not in the tracked group): only a record the destination has matters.
  if (!remote) return null;
  switch (destination.syncMode) {
    case "sync":
      return { ...base, newRecordProperties: old.properties, newGroups: [], toDelete: true, updateOnly: false };
    case "additive":
      // Additive never deletes: the record stays remotely without its groups.
      if (remote.groups.length === 0) return null;
      return { ...base, newRecordProperties: old.properties, newGroups: [], toDelete: false, updateOnly: false };
    case "enrich":
      return null;
  }
}

/** The remote state after the destination acknowledged `plan` (null = the record is gone remotely). */
export function remoteStateAfter(plan: ExportPlan): RemoteState | null {
  return plan.toDelete ? null : { properties: plan.newRecordProperties, groups: plan.newGroups };
}
