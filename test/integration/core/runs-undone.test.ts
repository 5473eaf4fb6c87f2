// A config change undone part-way converges, on real LMDB: a state of 3,000 users (and 6,000 purchases
// aggregated into them) built under config A takes config B, whose Runs stop (a reload or a restart)
// once one of them has written its first chunk; then config A comes back (or a third config C). Once the
// Runs are done, the state equals a fresh state built under the last config from the same changes:
// records, invalid reasons, memberships, counts and rows. The chunk done under B must not linger.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Change } from "../../../core/change.js";
import { definitionsOf, type Definitions } from "../../../core/definitions.js";
import type { Domain } from "../../../core/domain.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { listRuns, Runs } from "../../../streams/runs.js";
import { asRaw } from "../../helpers/config.js";
import { dumpState } from "../../helpers/converge.js";
import { coreConfigObjects, purchase, user } from "../../helpers/core.js";

type Obj = Record<string, unknown>;
const USERS = 3000;
const T = Date.UTC(2026, 10, 1, 12, 0, 0);
const silent = pino({ level: "silent" });

function compiled(objects: Obj[]): { domain: Domain; definitions: Definitions; groups: string[] } {
  const result = validateObjects(asRaw(objects));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return { domain: result.domain, definitions: definitionsOf(result.config, result.domain), groups: [...result.domain.groups.keys()] };
}

/** Users with every other one a vip and named A or B; two purchases each, some refunded. */
function changes(): Change[] {
  const out: Change[] = [];
  for (let i = 1; i <= USERS; i += 1) out.push(user(i, { email: `u${i}@example.com`, first_name: i % 3 ? "Ada" : "Bob", vip: i % 2 === 0 }, T));
  for (let i = 1; i <= 2 * USERS; i += 1) {
    out.push(purchase(i, { user_id: 1 + (i % USERS), amount: (i % 90) + 10, state: i % 5 ? "paid" : "refunded", sku: i % 2 ? "A" : "B", created_at: T - (i % 5) * 86_400_000 }, T));
  }
  return out;
}

const A = (): Obj[] => coreConfigObjects();
const replace = (objects: Obj[], id: string, change: (o: Obj) => Obj | null): Obj[] => objects.flatMap((o) => (o.id === id && o.class !== "destination" ? [change(o)].filter((x): x is Obj => x !== null) : [o]));
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
  let dir: string;
  const stores: Store[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "runs-undone-"));
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const runs = (store: Store, domain: Domain, schedule: (work: { step(): Promise<boolean> }, runs: Runs) => void): Runs => {
    const r: Runs = new Runs({ store, domain, schedule: (work) => schedule(work, r), connectorOf: () => undefined, logger: silent, clock: () => T });
    return r;
  };
  const toEnd = (work: { step(): Promise<boolean> }) => void (async () => void (await (async () => { while (await work.step()); })()))();

  /** A state built under `objects` from the changes: its definitions recorded first, as a first start does. */
  async function built(name: string, objects: Obj[]): Promise<Store> {
    const store = Store.open(join(dir, name));
    stores.push(store);
    const { domain, definitions } = compiled(objects);
    await runs(store, domain, toEnd).start(definitions, () => true, store.isEmpty());
    const all = changes();
    for (let i = 0; i < all.length; i += 600) await applyBatch(store, domain, all.slice(i, i + 600), T);
    return store;
  }

  /** Takes `store` to `objects`, stopping the Runs (as a reload would) once one has written its first chunk. */
  async function partWay(store: Store, objects: Obj[]): Promise<string[]> {
    const { domain, definitions } = compiled(objects);
    let stepped!: () => void;
    const done = new Promise<void>((resolve) => (stepped = resolve));
    const wrote = () => listRuns(store).some((r) => r.state === "running" && r.processed > 0);
    const first = runs(store, domain, (work, self) =>
      void (async () => {
        while ((await work.step()) && !wrote());
        self.stop();
        stepped();
      })(),
    );
    const plan = await first.start(definitions, () => true, false);
    if (plan.runs.length > 0) await done;
    return plan.runs.map((r) => `${r.spec.kind} ${r.target}`);
  }

  /** Takes `store` to `objects` until its Runs are done; `writes` arrive one batch after each chunk (the source changing meanwhile), the rest at the end. */
  async function settled(store: Store, objects: Obj[], writes: Change[][] = []): Promise<string[]> {
    const { domain, definitions } = compiled(objects);
    const left = [...writes];
    const r = runs(store, domain, (work) =>
      void (async () => {
        for (;;) {
          const more = await work.step();
          const batch = left.shift();
          if (batch) await applyBatch(store, domain, batch, T);
          if (!more) return;
        }
      })(),
    );
    const plan = await r.start(definitions, () => true, false);
    await r.idle();
    for (const batch of left.splice(0)) await applyBatch(store, domain, batch, T);
    expect(listRuns(store).filter((run) => run.state === "running" || run.state === "queued" || run.state === "failed")).toEqual([]);
    return plan.runs.map((run) => `${run.spec.kind} ${run.target}`);
  }

  const dump = (store: Store, objects: Obj[]) => dumpState(store, ["users"], [], compiled(objects).groups, ["purchases_table"]);

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
    await runs(store, b.domain, toEnd).prepare(b.definitions, () => true);
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
