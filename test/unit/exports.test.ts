// Export planning per sync mode, relative to what the destination last acknowledged.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DestinationDef } from "../../core/domain.js";
import { planExport, remoteStateAfter, remoteStateOf, type ExportPlan, type RemoteState } from "../../core/exports.js";
import { sameValue } from "../../core/values.js";
import type { PropertyValue } from "../../core/vocabulary.js";

const destination = (over: Partial<DestinationDef> = {}): DestinationDef => ({
  id: "crm",
  modelId: "users",
  collection: "group",
  groupId: "vips",
  syncMode: "sync",
  mapping: { id: "user_id", mail: "email" },
  groupMemberships: { VIP: "vips", Buyer: "buyers" },
  ...over,
});
const record = (groups: string[], email = "a@example.com") => ({ values: { user_id: 1, email, other: 5 }, groups });
const remote: RemoteState = { properties: { id: 1, mail: "a@example.com" }, groups: ["Buyer", "VIP"] };

describe("planExport", () => {
  it("creates a record entering the tracked group, with old and new sides", () => {
    expect(planExport(destination(), "1", record(["buyers", "vips"]), null, 7)).toEqual({
      destinationId: "crm",
      recordId: "1",
      oldRecordProperties: {},
      newRecordProperties: { id: 1, mail: "a@example.com" },
      oldGroups: [],
      newGroups: ["Buyer", "VIP"],
      toDelete: false,
      updateOnly: false,
      commitTime: 7,
    });
  });

  it("plans nothing when nothing mapped changed", () => {
    expect(planExport(destination(), "1", record(["buyers", "vips"]), remote, 7)).toBeNull();
  });

  it("updates when a mapped property changed", () => {
    const plan = planExport(destination(), "1", record(["buyers", "vips"], "b@example.com"), remote, 7);
    expect(plan?.oldRecordProperties).toEqual({ id: 1, mail: "a@example.com" });
    expect(plan?.newRecordProperties).toEqual({ id: 1, mail: "b@example.com" });
    expect(plan?.toDelete).toBe(false);
  });

  it("sync: deletes a record leaving the tracked group or deleted", () => {
    expect(planExport(destination(), "1", record(["buyers"]), remote, 7)).toMatchObject({ toDelete: true, newGroups: [] });
    expect(planExport(destination(), "1", null, remote, 7)).toMatchObject({ toDelete: true });
    expect(planExport(destination(), "1", null, null, 7)).toBeNull();
  });

  it("additive: never deletes; a would-be delete only clears the groups", () => {
    const additive = destination({ syncMode: "additive" });
    const plan = planExport(additive, "1", null, remote, 7);
    expect(plan).toMatchObject({ toDelete: false, oldGroups: ["Buyer", "VIP"], newGroups: [], newRecordProperties: remote.properties });
    expect(planExport(additive, "1", null, plan ? remoteStateAfter(plan) : null, 8)).toBeNull();
  });

  it("enrich: only updates, never creates remotely on its own and never deletes", () => {
    const enrich = destination({ syncMode: "enrich" });
    expect(planExport(enrich, "1", record(["vips"]), null, 7)).toMatchObject({ updateOnly: true, toDelete: false });
    expect(planExport(enrich, "1", null, remote, 7)).toBeNull();
  });

  it("model collection: every record is in scope", () => {
    const all = destination({ collection: "model", groupId: undefined });
    expect(planExport(all, "1", record([]), null, 7)).toMatchObject({ newGroups: [], toDelete: false });
  });
});

// The plan as the sync modes define it, written plainly: what planExport must equal for any input.
function specRemoteState(d: DestinationDef, r: { values: Record<string, unknown>; groups: readonly string[] }): RemoteState {
  const properties = Object.fromEntries(Object.entries(d.mapping).map(([remote, propertyId]) => [remote, r.values[propertyId] ?? null])) as RemoteState["properties"];
  const groups = Object.entries(d.groupMemberships).filter(([, groupId]) => r.groups.includes(groupId)).map(([name]) => name).sort();
  return { properties, groups };
}
function specPlan(d: DestinationDef, recordId: string, r: { values: Record<string, unknown>; groups: readonly string[] } | null, remote: RemoteState | null, commitTime: number): ExportPlan | null {
  const old = remote ?? { properties: {}, groups: [] };
  const base = { destinationId: d.id, recordId, oldRecordProperties: old.properties, oldGroups: old.groups, commitTime };
  const inScope = r !== null && (d.collection === "model" || (d.groupId !== undefined && r.groups.includes(d.groupId)));
  if (inScope && r) {
    const next = specRemoteState(d, r);
    const same =
      remote !== null &&
      JSON.stringify(remote.groups) === JSON.stringify(next.groups) &&
      Object.keys(remote.properties).length === Object.keys(next.properties).length &&
      Object.keys(remote.properties).every((k) => sameValue(remote.properties[k], next.properties[k]));
    if (same) return null;
    return { ...base, newRecordProperties: next.properties, newGroups: next.groups, toDelete: false, updateOnly: d.syncMode === "enrich" };
  }
  if (!remote) return null;
  if (d.syncMode === "sync") return { ...base, newRecordProperties: old.properties, newGroups: [], toDelete: true, updateOnly: false };
  if (d.syncMode === "additive") return remote.groups.length === 0 ? null : { ...base, newRecordProperties: old.properties, newGroups: [], toDelete: false, updateOnly: false };
  return null;
}

describe("planExport against the sync modes' definition", () => {
  const ids = fc.constantFrom("a", "b", "c", "d");
  const value: fc.Arbitrary<PropertyValue | PropertyValue[]> = fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 2 }), fc.constantFrom("x", "y"), fc.constant(null).map(() => [1, 2]));
  const groupIds = fc.uniqueArray(fc.constantFrom("g1", "g2", "g3"), { maxLength: 3 }).map((g) => g.sort());
  const destinationArb = fc.record({
    collection: fc.constantFrom("model", "group") as fc.Arbitrary<DestinationDef["collection"]>,
    groupId: fc.constantFrom("g1", "g2"),
    syncMode: fc.constantFrom("sync", "additive", "enrich") as fc.Arbitrary<DestinationDef["syncMode"]>,
    // Integer-like names (ordered first by JavaScript) and one Object.prototype has among them.
    mapping: fc.dictionary(fc.constantFrom("Z", "m", "A", "k", "10", "9", "constructor"), ids),
    groupMemberships: fc.dictionary(fc.constantFrom("VIP", "buyer", "Alpha", "z", "10", "9", "constructor"), fc.constantFrom("g1", "g2", "g3")),
  });
  const recordArb = fc.option(fc.record({ values: fc.dictionary(ids, value), groups: groupIds }), { nil: null });
  const remoteArb = fc.option(
    fc.record({ properties: fc.dictionary(fc.constantFrom("Z", "m", "A", "k", "10", "constructor"), value), groups: fc.uniqueArray(fc.constantFrom("VIP", "buyer", "Alpha", "z", "10")).map((g) => g.sort()) }),
    { nil: null },
  );

  it("plans what the definition says, for any destination, record and remote state", () => {
    fc.assert(
      fc.property(destinationArb, recordArb, remoteArb, fc.boolean(), (over, r, remoteState, reuseNext) => {
        const d = destination(over);
        // Also the remote state equal to what the record maps to: the "nothing changed" case.
        const remoteOf = reuseNext && r ? specRemoteState(d, r) : remoteState;
        const plan = planExport(d, "1", r, remoteOf, 7);
        const spec = specPlan(d, "1", r, remoteOf, 7);
        expect(plan).toEqual(spec);
        // The same keys in the same order (what a destination's payload is built from).
        if (plan && spec) {
          expect(Object.keys(plan)).toEqual(Object.keys(spec));
          expect(Object.keys(plan.newRecordProperties)).toEqual(Object.keys(spec.newRecordProperties));
        }
        if (r) expect(remoteStateOf(d, r)).toEqual(specRemoteState(d, r));
      }),
      { numRuns: 2000 },
    );
  });
});
