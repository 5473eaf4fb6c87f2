// Time-index entries that nothing evaluates as relative any more, on real LMDB. A relative-date group
// whose rules a config change made plain (`exists`) kept every record's boundary in the time index
// (its backfill judged the group without them, and left them): once their instant passed, each sweep
// found them due, evaluated nothing that removed them, and the pipeline armed the next sweep at the
// same past instant: a write transaction every millisecond, for ever (restarts included). A group
// taken out of the config did the same until its remove-group Run reached its entries. Now the
// evaluation of a group without relative rules drops the record's boundary, and a sweep takes each due
// entry out of the index before evaluating it (the evaluation puts the next one, always later).
import { describe, expect, it } from "vitest";
import { sweep } from "../../../streams/batch.js";
import { A, compiled, replace, T, undoneStates, type Obj } from "../../helpers/undone.js";

const LATER = T + 100 * 86_400_000;

describe("time-index entries of a group no longer relative", () => {
  const states = undoneStates("time-index-stale-");

  it("a relative-date group made plain: its backfill takes the boundaries out, and no sweep is ever due", { timeout: 60_000 }, async () => {
    const store = await states.built("state", A());
    const before = store.dueBoundaries(LATER).filter((e) => e.groupId === "recent").length;
    expect(before).toBeGreaterThan(0);
    const B = replace(A(), "recent", (o) => ({ ...o, rules: [{ propertyId: "last_purchase_at", op: "exists" }] }));
    expect(await states.settled(store, B)).toEqual(["backfill group recent"]);
    const withBoundary = [...store.recordsOf("users")].filter((r) => r.boundaries.recent !== undefined).length;
    expect({ due: store.dueBoundaries(LATER).length, next: store.nextBoundaryInstant(), withBoundary }).toEqual({ due: 0, next: undefined, withBoundary: 0 });
    expect(await sweep(store, compiled(B).domain, LATER)).toBeUndefined();
  });

  it("a group taken out of the config: a sweep before its remove-group Run takes its due entries out, once", { timeout: 60_000 }, async () => {
    const store = await states.built("state", A());
    const due = store.dueBoundaries(LATER).length;
    expect(due).toBeGreaterThan(0);
    // The config without `recent` (and the destination's membership of it); its Runs not started yet.
    const C = A()
      .filter((o) => o.id !== "recent")
      .map((o) => (o.class === "destination" ? { ...o, destinationGroupMemberships: { "High Value": "high_value" } } : o)) as Obj[];
    const { domain } = compiled(C);
    expect(await sweep(store, domain, LATER)).toBeDefined();
    expect({ due: store.dueBoundaries(LATER).length, next: store.nextBoundaryInstant() }).toEqual({ due: 0, next: undefined });
    expect(await sweep(store, domain, LATER)).toBeUndefined();
    // Its Run then takes the memberships out as before.
    await states.settled(store, C);
    expect([...store.recordsOf("users")].filter((r) => r.groups.includes("recent") || r.boundaries.recent !== undefined).length).toBe(0);
  });
});
