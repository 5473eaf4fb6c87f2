// A group moved to another model, its id kept (a config restructured), on real LMDB, against a fresh
// state on the new config. Only the new model's backfill was planned: the records of the model it was
// on kept it in their groups, and its members counter (grouparoo_group_members) counted them with the
// new model's members. Now the move plans the group's removal from the old model first, as a removal
// does, and the counter, the group's, is not dropped from under what the new model counted meanwhile.
import { describe, expect, it } from "vitest";
import { applyBatch } from "../../../streams/batch.js";
import { dumpState } from "../../helpers/converge.js";
import { user } from "../../helpers/core.js";
import { A, accountChange, accountsObjects, compiled, T, undoneStates, type Obj } from "../../helpers/undone.js";

const ACCOUNTS = Array.from({ length: 30 }, (_, i) => accountChange(i + 1, "db", String(2_000_000 + i)));
const before = (): Obj[] => [...A(), ...accountsObjects()];
/** `big` (accounts on the big plan) becomes a group of users: the VIPs. */
const after = (): Obj[] => before().map((o) => (o.id === "big" ? { class: "group", id: "big", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] } : o));
const dump = (store: Parameters<typeof dumpState>[0]) => dumpState(store, ["users", "accounts"], [], compiled(after()).groups, []);

describe("a group moved to another model", () => {
  const states = undoneStates("group-moved-model-");

  it("leaves the old model's records and counts only the new model's members, as a fresh state does", { timeout: 60_000 }, async () => {
    const store = await states.built("state", before(), ACCOUNTS);
    expect([...store.recordsOf("accounts")].filter((r) => r.groups.includes("big")).length).toBe(10);
    // A VIP streams in between the plan and its Runs (its membership counted by the batch).
    const late = user(90_001, { email: "late@example.com", vip: true }, T);
    const planned = await states.settled(store, after(), { writes: [[late]] });
    expect(planned).toEqual(["remove-group group big", "backfill group big"]);
    const fresh = await states.built("fresh", after(), ACCOUNTS);
    await applyBatch(fresh, compiled(after()).domain, [late], T);
    const state = dump(store);
    expect(state).toEqual(dump(fresh));
    expect((state.counts as Record<string, number>)["members/big"]).toBe(1501);
  });

  it("leaves the old model's records when that model is removed by the same change, and counts only the new model's members", { timeout: 60_000 }, async () => {
    // The accounts model goes with the move: its records are dropped whole (not counted out), so the
    // group's removal from them is what takes them out of its counter. Before, no removal was planned
    // for a moved group whose old model went, and the counter kept the accounts' 10 members.
    const without = (): Obj[] => [...A(), { class: "group", id: "big", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] }];
    const store = await states.built("state", before(), ACCOUNTS);
    const planned = await states.settled(store, without());
    expect(planned).toContain("remove-group group big");
    const fresh = await states.built("fresh", without());
    const dumpWithout = (s: Parameters<typeof dumpState>[0]) => dumpState(s, ["users", "accounts"], [], compiled(without()).groups, []);
    const state = dumpWithout(store);
    expect(state).toEqual(dumpWithout(fresh));
    expect((state.counts as Record<string, number>)["members/big"]).toBe(1500);
  });
});
