// A config change undone part-way converges, on real LMDB: a state of 3,000 users (and 6,000 purchases
// aggregated into them) built under config A takes config B, whose Runs stop (a reload or a restart)
// once one of them has written its first chunk; then config A comes back (or a third config C). Once the
// Runs are done, the state equals a fresh state built under the last config from the same changes:
// records, invalid reasons, memberships, counts and rows. The chunk done under B must not linger.
import { describe, expect, it } from "vitest";
import type { Change } from "../../../core/change.js";
import type { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { listRuns } from "../../../streams/runs.js";
import { purchase, user } from "../../helpers/core.js";
import { A, compiled, dumpUsers as dump, replace, runner, T, undoneStates, USERS, type Obj } from "../../helpers/undone.js";

const CONFIGS: Record<string, () => Obj[]> = {
  A,
  "vips' rule changed": () => replace(A(), "vips", (o) => ({ ...o, rules: [{ propertyId: "vip", op: "eq", match: false }] })),
  "vips' rule changed again": () => replace(A(), "vips", (o) => ({ ...o, rules: [{ propertyId: "first_name", op: "eq", match: "Bob" }] })),
  "a group added": () => [...A(), { class: "group", id: "named_b", modelId: "users", rules: [{ propertyId: "first_name", op: "iLike", match: "b%" }] }],
  "vips removed": () => replace(A(), "vips", () => null),
  "lifetime_value's filter changed": () => replace(A(), "lifetime_value", (o) => ({ ...o, filters: [{ key: "state", op: "eq", match: "refunded" }] })),
  "an aggregate added": () => [...A(), { class: "property", id: "refunded_total", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "sum" }, filters: [{ key: "state", op: "eq", match: "refunded" }] }],
  "purchase_count removed": () => replace(A(), "purchase_count", () => null).filter((o) => o.id !== "buyers"),
  "the destination's mapping changed": () => A().map((o) => (o.class === "destination" ? { ...o, mapping: { id: "user_id", email: "email", count: "purchase_count" } } : o)),
};

describe("a config change undone part-way", () => {
  const states = undoneStates("runs-undone-");
  const built = states.built;

  /** Takes `store` to `objects`, stopping the Runs (as a reload would) once one has written its first chunk. */
  async function partWay(store: Store, objects: Obj[]): Promise<string[]> {
    const { domain, definitions } = compiled(objects);
    const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
    const plan = await runs.start(definitions, () => true, false);
    await Promise.race([stopped, runs.idle()]);
    runs.stop();
    return plan.runs.map((r) => `${r.spec.kind} ${r.target}`);
  }

  const settled = (store: Store, objects: Obj[], writes?: Change[][]) => states.settled(store, objects, writes ? { writes } : {});

  it.each([
    ["vips' rule changed", "A"],
    ["a group added", "A"],
    ["vips removed", "A"],
    ["lifetime_value's filter changed", "A"],
    ["an aggregate added", "A"],
    ["purchase_count removed", "A"],
    ["vips' rule changed", "vips' rule changed again"],
    ["a group added", "vips removed"],
  ])("%s, then %s", { timeout: 60_000 }, async (b, last) => {
    const store = await built("state", A());
    const planned = await partWay(store, (CONFIGS[b] as () => Obj[])());
    expect(planned.length).toBeGreaterThan(0);
    // A Run stopped after its first chunk: part of the state is B's.
    expect(listRuns(store).filter((r) => r.state === "running" && r.processed > 0 && r.processed < USERS).length).toBe(1);
    const final = (CONFIGS[last] as () => Obj[])();
    await settled(store, final);
    const fresh = await built("fresh", final);
    expect(dump(store, final)).toEqual(dump(fresh, final));
  });

  /** The source changing: purchases added, changed (amount, state) and deleted, users changed; in batches of 50. */
  function moreChanges(): Change[][] {
    const all: Change[] = [];
    for (let i = 1; i <= 300; i += 1) all.push(purchase(100_000 + i, { user_id: i, amount: 70, state: "paid", sku: "A", created_at: T - 86_400_000 }, T));
    for (let i = 1; i <= 200; i += 1) all.push({ ...purchase(i, { user_id: 1 + (i % USERS), amount: 500 + i, state: i % 2 ? "paid" : "refunded", sku: "B", created_at: T }, T), op: "update" });
    for (let i = 201; i <= 300; i += 1) all.push({ ...purchase(i, { user_id: 1 + (i % USERS) }, T), op: "delete", after: null });
    for (let i = 1; i <= 100; i += 1) all.push({ ...user(i, { email: `u${i}@example.com`, first_name: "Cy", vip: i % 3 === 0 }, T), op: "update" });
    return Array.from({ length: Math.ceil(all.length / 50) }, (_, k) => all.slice(k * 50, k * 50 + 50));
  }

  it.each([["vips' rule changed"], ["lifetime_value's filter changed"], ["an aggregate added"], ["purchase_count removed"], ["the destination's mapping changed"]])(
    "%s, then undone while the source changes",
    { timeout: 60_000 },
    async (b) => {
      const store = await built("state", A());
      await partWay(store, (CONFIGS[b] as () => Obj[])());
      await settled(store, A(), moreChanges());
      const fresh = await built("fresh", A());
      for (const batch of moreChanges()) await applyBatch(fresh, compiled(A()).domain, batch, T);
      expect(dump(store, A())).toEqual(dump(fresh, A()));
    },
  );

  it("a change that streamed under its config before its Runs were planned (the process died between), then undone", async () => {
    const store = await built("state", A());
    const b = compiled((CONFIGS["vips' rule changed"] as () => Obj[])());
    // The daemon marks the change before its sources read (prepare), then streams under it; it dies before start().
    await runner(store, b.domain).runs.prepare(b.definitions, () => true);
    await applyBatch(store, b.domain, Array.from({ length: 100 }, (_, i) => ({ ...user(i + 1, { email: `u${i + 1}@example.com`, first_name: "Cy", vip: (i + 1) % 2 === 0 }, T), op: "update" as const })), T);
    expect(listRuns(store)).toEqual([]);
    expect(await settled(store, A())).toEqual(["backfill group vips"]);
    const fresh = await built("fresh", A());
    await applyBatch(fresh, compiled(A()).domain, Array.from({ length: 100 }, (_, i) => ({ ...user(i + 1, { email: `u${i + 1}@example.com`, first_name: "Cy", vip: (i + 1) % 2 === 0 }, T), op: "update" as const })), T);
    expect(dump(store, A())).toEqual(dump(fresh, A()));
  });

  it("a change stopped part-way and started again on the same config resumes its Runs, planning nothing more", async () => {
    const store = await built("state", A());
    const b = CONFIGS["vips' rule changed"] as () => Obj[];
    const planned = await partWay(store, b());
    const again = await settled(store, b());
    expect(again).toEqual(planned);
    expect(listRuns(store).map((r) => [r.kind, r.state, r.processed])).toEqual([["backfill", "complete", USERS]]);
    const fresh = await built("fresh", b());
    expect(dump(store, b())).toEqual(dump(fresh, b()));
    // Settled, the same config plans nothing.
    expect(await settled(store, b())).toEqual([]);
  });

  it("a destination's export undone part-way plans every record again under the old mapping", async () => {
    const store = await built("state", A());
    expect(store.outboxDepth("crm")).toBe(USERS);
    const planned = await partWay(store, (CONFIGS["the destination's mapping changed"] as () => Obj[])());
    expect(planned).toEqual(["export destination crm"]);
    const again = await settled(store, A());
    expect(again).toEqual(["export destination crm"]);
    const entries = store.outboxOf("crm", 10_000);
    expect(entries.length).toBe(USERS);
    for (const entry of entries) expect(Object.keys(entry.newRecordProperties).sort()).toEqual(["email", "id", "ltv"]);
  });
});
