// Export planning per sync mode, relative to what the destination last acknowledged.
import { describe, expect, it } from "vitest";
import type { DestinationDef } from "../../core/domain.js";
import { planExport, remoteStateAfter, type RemoteState } from "../../core/exports.js";

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
