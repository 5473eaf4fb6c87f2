// Planning Runs from definitions (pure): each kind of config change gets exactly the Runs that take
// the state to what a fresh daemon on the new config builds, and nothing else.
import { describe, expect, it } from "vitest";
import { applyUpdates, definitionsOf, definitionsOfModel, operationalOptionsOf, planRuns, removedThenReadWhole, unsettledWithoutOperational, withoutOperational, requestedRunChanged, requestedRunObsolete, runCovers, type Definitions, type RunPlan, type RunSpec, type Unsettled } from "../../core/definitions.js";
import { builtinComponents } from "../../connectors/registry.js";
import type { ComponentCatalog } from "../../core/config/types.js";
import { validateObjects } from "../../daemon/config/validate.js";
import { asRaw, find, validConfigObjects } from "../helpers/config.js";

type Obj = Record<string, unknown>;

function definitions(objects: Obj[], catalog?: ComponentCatalog): Definitions {
  const result = validateObjects(asRaw(objects));
  if (!result.config || !result.domain) throw new Error(JSON.stringify(result.issues));
  return definitionsOf(result.config, result.domain, catalog);
}

/** The definitions of the test config changed by `change`, with the components' knowledge of `catalog` when given. */
function definitionsChanged(change: (objects: Obj[]) => void, catalog?: ComponentCatalog): Definitions {
  const objects = validConfigObjects();
  change(objects);
  return definitions(objects, catalog);
}

/** The Runs (kind and target) a change needs, with every source past its existing rows unless `fresh` names it. */
function plan(change: (objects: Obj[]) => void, fresh: string[] = []): string[] {
  const before = validConfigObjects();
  const after = validConfigObjects();
  change(after);
  const result = planRuns(definitions(before), definitions(after), { needsReread: (id) => !fresh.includes(id) });
  expectConverges(definitions(before), definitions(after), result);
  return result.runs.map((r) => `${r.spec.kind} ${r.target}`);
}

/** Once every Run of a plan is done, the state records exactly the new definitions. */
function expectConverges(before: Definitions, after: Definitions, plan: RunPlan): void {
  const recorded = applyUpdates(before, [...plan.runs.flatMap((r) => r.updates), ...plan.updates]);
  expect(JSON.stringify(recorded, Object.keys(recorded).sort())).toBe(JSON.stringify(after, Object.keys(after).sort()));
  expect(recorded).toEqual(after);
}

const property = (o: Obj[], id: string) => find(o, id);

describe("planRuns", () => {
  it("plans nothing for the same config, and records every definition of a new state", () => {
    expect(plan(() => undefined)).toEqual([]);
    const d = definitions(validConfigObjects());
    expect(Object.keys(d.properties).sort()).toEqual(["email", "first_name", "last_purchase_at", "lifetime_value", "purchase_count", "signed_up_at", "skus", "user_id", "vip"]);
  });

  it("takes a renamed primary source's records out with the source, its properties kept for the re-read (not removed first)", () => {
    const rename = (o: Obj[]) => {
      for (const x of o) {
        if (x.class === "source" && x.id === "users_table") x.id = "people_table";
        if (x.sourceId === "users_table") x.sourceId = "people_table";
      }
    };
    // Before 2026-12-03 user_id's removal came first: the purchases rows attached through it stayed on
    // the deleted records, and the records read again had none (their aggregates lost for good).
    expect(plan(rename)).toEqual(["remove-source source users_table", "reread source people_table"]);
    // A property that changes uniqueness on the way is removed first, as for any source.
    expect(plan((o) => (rename(o), (property(o, "email").unique = false)))).toEqual(["remove-property property email", "remove-source source users_table", "reread source people_table"]);
  });

  it("takes a renamed model's sources out with it (their rows too), so that they are read again on the new one", () => {
    const rename = (o: Obj[]) => {
      for (const x of o) {
        if (x.class === "model" && x.id === "users") x.id = "people";
        if (x.modelId === "users") x.modelId = "people";
      }
    };
    const before = definitions(validConfigObjects());
    const after = validConfigObjects();
    rename(after);
    const removal = planRuns(before, definitions(after), { needsReread: () => true }).runs.find((r) => r.spec.kind === "remove-model");
    // Before 2026-12-03 only the model was forgotten: its sources' rows stayed, attached to the records it dropped.
    expect(removal?.updates.filter((u) => u.cls === "sources").map((u) => u.id).sort()).toEqual(["purchases_table", "users_table"]);
    expect(plan(rename)).toEqual(expect.arrayContaining(["remove-model model users", "reread source users_table", "reread source purchases_table"]));
  });

  it("recomputes a property added on a source with many rows from the stored rows", () => {
    expect(plan((o) => o.push({ class: "property", id: "max_amount", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "max" } }))).toEqual([
      "rebuild property max_amount",
    ]);
  });

  it("recomputes a property whose method, filter or column changed, all of one source in one Run", () => {
    expect(
      plan((o) => {
        (property(o, "lifetime_value").options as Obj).aggregationMethod = "average";
        property(o, "purchase_count").filters = [{ key: "state", op: "eq", match: "paid" }];
      }),
    ).toEqual(["rebuild properties purchase_count, lifetime_value"]);
  });

  it("reads the primary source again for a property added on it (its rows are kept only as values)", () => {
    expect(plan((o) => o.push({ class: "property", id: "last_name", type: "string", sourceId: "users_table", options: { column: "last_name" } }))).toEqual(["reread source users_table"]);
    // unless its connector reads the source whole anyway (a snapshot still to come)
    expect(plan((o) => o.push({ class: "property", id: "last_name", type: "string", sourceId: "users_table", options: { column: "last_name" } }), ["users_table"])).toEqual([]);
  });

  it("removes a property from every record, and a unique one from the unique index too", () => {
    expect(
      plan((o) => {
        o.splice(o.indexOf(property(o, "vip")), 1);
      }),
    ).toEqual(["remove-property property vip"]);
    const runs = planRuns(
      definitions(validConfigObjects()),
      definitions(validConfigObjects().map((x) => (x.id === "email" ? { ...x, unique: false } : x))),
      { needsReread: () => true },
    ).runs;
    expect(runs.map((r) => r.spec)).toEqual([
      { kind: "remove-property", propertyId: "email", modelId: "users", unique: true },
      { kind: "reread", sourceId: "users_table", modelId: "users" },
    ]);
  });

  it("reads a source added on a stream past its rows, and removes one taken out with its properties", () => {
    const added: Obj[] = [
      { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "shop_db", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } },
      { class: "property", id: "refund_count", type: "integer", sourceId: "refunds_table", options: { column: "id", aggregationMethod: "count" } },
    ];
    expect(plan((o) => o.push(...added))).toEqual(["reread source refunds_table", "rebuild property refund_count"]);
    // Read whole by its connector (a new slot): its rows come that way, but the records it has no rows
    // for get their count 0 only from a rebuild (before 2026-12-03 nothing was planned: no value at all).
    expect(plan((o) => o.push(...added), ["refunds_table"])).toEqual(["rebuild property refund_count"]);
    const removed = planRuns(definitions([...validConfigObjects(), ...added]), definitions(validConfigObjects()), { needsReread: () => true });
    expect(removed.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-property property refund_count", "remove-source source refunds_table"]);
    expect(removed.runs.flatMap((r) => r.updates)).toEqual([
      { cls: "properties", id: "refund_count", definition: null },
      { cls: "sources", id: "refunds_table", definition: null },
    ]);
  });

  it("deletes the records of a primary source whose table changed and reads them again, keeping its properties", () => {
    // Its records go with the source (their unique values released: the rows attached through them wait
    // for the records to come back); its properties are not removed first.
    expect(plan((o) => void ((find(o, "users_table").options as Obj).table = "users2"))).toEqual(["remove-source source users_table", "reread source users_table"]);
    // Forgotten with the source, so that a restart plans the same re-read (which records them again).
    const objects = validConfigObjects();
    (find(objects, "users_table").options as Obj).table = "users2";
    const removal = planRuns(definitions(validConfigObjects()), definitions(objects), { needsReread: () => true }).runs[0];
    expect(removal?.updates.map((u) => `${u.cls}:${u.id}:${u.definition === null ? "forget" : "record"}`)).toEqual([
      "sources:users_table:forget",
      "properties:user_id:forget",
      "properties:email:forget",
      "properties:first_name:forget",
      "properties:signed_up_at:forget",
      "properties:vip:forget",
    ]);
  });

  it("removes and reads again a source whose table changed, with its properties", () => {
    expect(plan((o) => ((find(o, "purchases_table").options as Obj).table = "public.orders"))).toEqual([
      "remove-property property purchase_count",
      "remove-property property lifetime_value",
      "remove-property property last_purchase_at",
      "remove-property property skus",
      "remove-source source purchases_table",
      "reread source purchases_table",
      "rebuild properties purchase_count, lifetime_value, last_purchase_at, skus",
    ]);
  });

  it("backfills a new, changed or returning group and removes a group taken out", () => {
    expect(plan((o) => o.push({ class: "group", id: "vips", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] }))).toEqual(["backfill group vips"]);
    expect(plan((o) => ((find(o, "recent_buyers").rules as Obj[])[0] = { propertyId: "last_purchase_at", op: "relative_gt", relativeMatchNumber: 7, relativeMatchUnit: "days" }))).toEqual([
      "backfill group recent_buyers",
    ]);
    expect(
      plan((o) => {
        find(o, "crm").destinationGroupMemberships = {};
        o.splice(o.indexOf(find(o, "recent_buyers")), 1);
      }),
    ).toEqual(["remove-group group recent_buyers", "export destination crm"]);
  });

  it("plans every record again for a destination whose mapping, tracked group or sync mode changed, from scratch when its target changed", () => {
    const exports = (change: (o: Obj[]) => void) =>
      planRuns(definitions(validConfigObjects()), definitions((() => {
        const o = validConfigObjects();
        change(o);
        return o;
      })()), { needsReread: () => true }).runs.map((r) => r.spec);
    expect(exports((o) => (find(o, "crm").mapping = { id: "user_id" }))).toEqual([{ kind: "export", destinationId: "crm", modelId: "users", reset: false }]);
    expect(exports((o) => (find(o, "crm").syncMode = "additive"))).toEqual([{ kind: "export", destinationId: "crm", modelId: "users", reset: false }]);
    expect(exports((o) => (find(o, "crm").groupId = "recent_buyers"))).toEqual([{ kind: "export", destinationId: "crm", modelId: "users", reset: false }]);
    expect(exports((o) => (find(o, "crm").options = { path: "/other" }))).toEqual([{ kind: "export", destinationId: "crm", modelId: "users", reset: true }]);
    expect(exports((o) => o.splice(o.indexOf(find(o, "crm")), 1))).toEqual([{ kind: "remove-destination", destinationId: "crm" }]);
  });

  it("keeps a Run asked for by hand while what it is about is in the config, and says why not otherwise", () => {
    const now = definitions(validConfigObjects());
    expect(requestedRunObsolete({ kind: "reread", sourceId: "purchases_table", modelId: "users" }, now)).toBeUndefined();
    expect(requestedRunObsolete({ kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["purchase_count", "lifetime_value"] }, now)).toBeUndefined();
    expect(requestedRunObsolete({ kind: "backfill", groupId: "high_value", modelId: "users" }, now)).toBeUndefined();
    expect(requestedRunObsolete({ kind: "export", destinationId: "crm", modelId: "users", reset: false }, now)).toBeUndefined();

    expect(requestedRunObsolete({ kind: "reread", sourceId: "gone", modelId: "users" }, now)).toBe("source gone is no longer in the config (of model users)");
    expect(requestedRunObsolete({ kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["purchase_count", "gone", "email"] }, now)).toBe(
      "property gone, property email no longer read from source purchases_table in the config",
    );
    expect(requestedRunObsolete({ kind: "rebuild", sourceId: "users_table", modelId: "users", propertyIds: ["email"] }, now)).toBe("source users_table is no longer a secondary source of model users in the config");
    expect(requestedRunObsolete({ kind: "backfill", groupId: "high_value", modelId: "accounts" }, now)).toBe("group high_value is no longer in the config (of model accounts)");
    expect(requestedRunObsolete({ kind: "export", destinationId: "gone", modelId: "users", reset: false }, now)).toBe("destination gone is no longer in the config (of model users)");
    expect(requestedRunObsolete({ kind: "remove-group", groupId: "high_value", modelId: "users" }, now)).toBe("a remove-group Run is planned from the config, not asked for");
  });

  it("starts a Run asked for by hand again when a definition it depends on changed", () => {
    const before = definitions(validConfigObjects());
    const after = (change: (objects: Obj[]) => void) => {
      const objects = validConfigObjects();
      change(objects);
      return definitions(objects);
    };
    const rebuild: RunSpec = { kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["purchase_count"] };
    const reread: RunSpec = { kind: "reread", sourceId: "purchases_table", modelId: "users" };
    const backfill: RunSpec = { kind: "backfill", groupId: "high_value", modelId: "users" };
    const exports: RunSpec = { kind: "export", destinationId: "crm", modelId: "users", reset: false };
    for (const spec of [rebuild, reread, backfill, exports]) expect(requestedRunChanged(spec, before, before)).toBeUndefined();

    const filter = after((o) => (find(o, "lifetime_value").filters = [{ key: "state", op: "ne", match: "failed" }]));
    expect(requestedRunChanged(rebuild, before, filter)).toBeUndefined();
    expect(requestedRunChanged({ kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["purchase_count", "lifetime_value"] }, before, filter)).toBe("property lifetime_value");
    // A re-read's rows are stored raw: the Run a property's change plans recomputes it from them.
    expect(requestedRunChanged(reread, before, filter)).toBeUndefined();
    const table = after((o) => ((find(o, "purchases_table").options as Obj).table = "orders"));
    expect(requestedRunChanged(rebuild, before, table)).toBe("source purchases_table");
    expect(requestedRunChanged(reread, before, table)).toBe("source purchases_table");
    expect(requestedRunChanged(backfill, before, after((o) => ((find(o, "high_value").rules as Obj[])[0] = { propertyId: "lifetime_value", op: "gt", match: 1 })))).toBe("group high_value");
    expect(requestedRunChanged(exports, before, after((o) => ((find(o, "crm").mapping as Obj).id = "email")))).toBe("destination crm");
    expect(requestedRunChanged(backfill, before, table)).toBeUndefined();
  });

  it("takes a planned Run to cover one asked for by hand when it does all of it", () => {
    const rebuild = (propertyIds: string[], scan?: boolean): RunSpec => ({ kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds, ...(scan === undefined ? {} : { scan }) });
    expect(runCovers(rebuild(["a", "b"], true), rebuild(["b"]))).toBe(true);
    expect(runCovers(rebuild(["a"], true), rebuild(["a", "b"]))).toBe(false);
    expect(runCovers({ kind: "rebuild", sourceId: "other", modelId: "users", propertyIds: ["a"] }, rebuild(["a"]))).toBe(false);
    expect(runCovers({ kind: "export", destinationId: "crm", modelId: "users", reset: true }, { kind: "export", destinationId: "crm", modelId: "users", reset: false })).toBe(true);
    expect(runCovers({ kind: "export", destinationId: "crm", modelId: "users", reset: false }, { kind: "export", destinationId: "other", modelId: "users", reset: false })).toBe(false);
    expect(runCovers({ kind: "reread", sourceId: "s", modelId: "users" }, { kind: "reread", sourceId: "s", modelId: "users" })).toBe(true);
    expect(runCovers({ kind: "reread", sourceId: "s", modelId: "users" }, rebuild(["a"]))).toBe(false);
    expect(runCovers({ kind: "backfill", groupId: "g", modelId: "users" }, { kind: "backfill", groupId: "g", modelId: "users" })).toBe(true);
  });
});

describe("planRuns after a change cut short", () => {
  /** Config B planned from A and cut short (every object its Runs record unsettled, redo as given), then config C planned. */
  function undone(b: (objects: Obj[]) => void, c: (objects: Obj[]) => void = () => undefined, redo = false): { runs: string[]; reasons: string[]; plan: RunPlan } {
    const a = definitions(validConfigObjects());
    const bObjects = validConfigObjects();
    b(bObjects);
    const planB = planRuns(a, definitions(bObjects), { needsReread: () => true });
    const unsettled: Unsettled[] = planB.runs.flatMap((r) => r.updates).map((u) => ({ cls: u.cls, id: u.id, target: u.definition, seen: u.definition ?? (a[u.cls][u.id] as NonNullable<Unsettled["seen"]>), redo }));
    const cObjects = validConfigObjects();
    c(cObjects);
    const result = planRuns(a, definitions(cObjects), { needsReread: () => true, unsettled });
    expectConverges(a, definitions(cObjects), result);
    return { runs: result.runs.map((r) => `${r.spec.kind} ${r.target}`), reasons: result.runs.map((r) => r.reason), plan: result };
  }
  const addGroup = (o: Obj[]) => void o.push({ class: "group", id: "named_b", modelId: "users", rules: [{ propertyId: "first_name", op: "eq", match: "B" }] });

  it("plans nothing more when the config is still the one cut short (its Runs resume)", () => {
    const b = (o: Obj[]) => void (find(o, "recent_buyers").rules = [{ propertyId: "last_purchase_at", op: "relative_gt", relativeMatchNumber: 10, relativeMatchUnit: "days" }]);
    expect(undone(b, b).runs).toEqual(["backfill group recent_buyers"]);
    expect(undone(b, b).reasons).toEqual(["its rules changed"]);
  });

  it("evaluates a group again when its change is undone, and removes one whose addition is", () => {
    const { runs, reasons } = undone((o) => void (find(o, "recent_buyers").rules = [{ propertyId: "vip", op: "eq", match: false }]));
    expect(runs).toEqual(["backfill group recent_buyers"]);
    expect(reasons).toEqual(["a change to it was cut short (its Run did not finish): evaluated again"]);
    expect(undone(addGroup).runs).toEqual(["remove-group group named_b"]);
    // A group whose removal was cut short comes back evaluated again.
    const removed = (o: Obj[]) => {
      o.splice(o.indexOf(find(o, "recent_buyers")), 1);
      find(o, "crm").destinationGroupMemberships = {};
    };
    // The destination's Run goes first: it replaces what was queued for it under the abandoned definition.
    expect(undone(removed).runs).toEqual(["export destination crm", "backfill group recent_buyers"]);
  });

  it("computes again a property cut short, removes it first if it was being moved, and removes a source whose addition was cut short", () => {
    const sum = (o: Obj[]) => void ((find(o, "lifetime_value").options as Obj).aggregationMethod = "average");
    expect(undone(sum).runs).toEqual(["rebuild property lifetime_value"]);
    expect(undone(sum).reasons).toEqual(["a change to it was cut short (its Run did not finish): recomputed from the stored rows"]);
    // Made not unique, cut short: its index entries are a mix, so it is removed and read again.
    expect(undone((o) => void (find(o, "email").unique = false)).runs).toEqual(["remove-property property email", "reread source users_table"]);
    const source = (o: Obj[]) => void o.push({ class: "source", id: "refunds_table", type: "postgres-cdc", appId: "shop_db", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } });
    expect(undone(source).runs).toEqual(["remove-source source refunds_table"]);
    // A primary property added, cut short while its source was read again, then removed.
    expect(undone((o) => void o.push({ class: "property", id: "last_name", type: "string", sourceId: "users_table", options: { column: "last_name" } })).runs).toEqual(["remove-property property last_name"]);
  });

  it("plans every record again for a destination whose change was cut short, against what it holds", () => {
    // Not a reset: forgetting what the destination holds would never delete there the records since deleted.
    const { plan } = undone((o) => void ((find(o, "crm").mapping as Obj).name = "first_name"));
    expect(plan.runs.map((r) => r.spec)).toEqual([{ kind: "export", destinationId: "crm", modelId: "users", reset: false }]);
    // A reset cut short (other options) forgot part of what the destination holds: a reset again.
    const moved = undone((o) => void ((find(o, "crm").options as Obj).path = "/v2"), () => undefined);
    expect(moved.plan.runs.map((r) => r.spec)).toEqual([{ kind: "export", destinationId: "crm", modelId: "users", reset: true }]);
  });

  it("keeps redoing an object already planned redone, even on the config it was cut short from", () => {
    // Redo marked: the state is a mix whatever the config says, until that Run is done.
    const average = (o: Obj[]) => void ((find(o, "lifetime_value").options as Obj).aggregationMethod = "average");
    expect(undone(average, average, true).reasons).toEqual(["a change to it was cut short (its Run did not finish): recomputed from the stored rows"]);
    expect(undone(average, average, false).reasons).toEqual(["new or changed: recomputed from the stored rows"]);
  });
});

describe("definitionsOfModel", () => {
  it("keeps one model's definitions and what belongs to it (a worker's partition holds one model)", () => {
    const objects: Obj[] = [
      ...validConfigObjects(),
      { class: "model", id: "accounts", type: "account" },
      { class: "source", id: "accounts_table", type: "postgres-cdc", appId: "shop_db", modelId: "accounts", options: { table: "accounts" }, mapping: { id: "account_id" } },
      { class: "property", id: "account_id", type: "integer", unique: true, sourceId: "accounts_table", options: { column: "id" } },
      { class: "group", id: "big_accounts", modelId: "accounts", rules: [{ propertyId: "account_id", op: "gt", match: 10 }] },
    ];
    const all = definitions(objects);
    const users = definitionsOfModel(all, "users");
    const accounts = definitionsOfModel(all, "accounts");
    expect(Object.keys(users.models)).toEqual(["users"]);
    expect(Object.keys(users.sources).sort()).toEqual(["purchases_table", "users_table"]);
    expect(Object.keys(users.properties).sort()).toEqual(["email", "first_name", "last_purchase_at", "lifetime_value", "purchase_count", "signed_up_at", "skus", "user_id", "vip"]);
    expect(users.groups).toEqual(Object.fromEntries(Object.entries(all.groups).filter(([id]) => id !== "big_accounts")));
    expect(users.destinations).toEqual(all.destinations);
    expect(accounts).toEqual({ models: { accounts: all.models.accounts }, sources: { accounts_table: all.sources.accounts_table }, properties: { account_id: all.properties.account_id }, groups: { big_accounts: all.groups.big_accounts }, destinations: {} });
    // A change to another model plans nothing for this one.
    const changed = definitions(objects.filter((o) => o.id !== "big_accounts"));
    expect(planRuns(users, definitionsOfModel(changed, "users"), { needsReread: () => true })).toEqual({ runs: [], updates: [] });
    expect(definitionsOfModel(all, "nobody")).toEqual({ models: {}, sources: {}, properties: {}, groups: {}, destinations: {} });
  });
});

describe("operational options", () => {
  const catalog = builtinComponents();
  const operational = operationalOptionsOf(catalog);
  const onKafka = (o: Obj[], options: Obj) => Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.public.purchases", ...options } });
  const of = (change: (o: Obj[]) => void, withOperational = true): Definitions => definitionsChanged(change, withOperational ? catalog : undefined);
  const runs = (before: Definitions, after: Definitions) => planRuns(before, after, { needsReread: () => true });

  it("are declared by the types whose options change how they work, not what they read or write", () => {
    expect(operational("sources", "kafka-debezium")).toEqual(["deadLetterTopic"]);
    expect(operational("sources", "postgres-table-import")).toEqual(["batchSize"]);
    expect(operational("sources", "postgres-cdc")).toBeUndefined();
    expect(operational("destinations", "postgres-table")).toEqual(["statementTimeoutMs"]);
    expect(operational("destinations", "webhook")).toEqual(["batchSize"]);
  });

  it("need no Run when they alone change; what a source reads or a destination holds still does", () => {
    const before = of((o) => onKafka(o, { deadLetterTopic: "dlq", maxMessageBytes: 1000 }));
    expect(before.sources.purchases_table?.options).toEqual({ binaryHandlingMode: "bytes", format: "debezium", maxMessageBytes: 1000, topic: "shop.public.purchases", unavailableValuePlaceholder: "__debezium_unavailable_value" });
    // Before, every record of the source was deleted, exported as deleted, and read again from the topic.
    expect(runs(before, of((o) => onKafka(o, { deadLetterTopic: "dlq2", maxMessageBytes: 1000 })))).toEqual({ runs: [], updates: [] });
    expect(runs(before, of((o) => onKafka(o, { maxMessageBytes: 1000 })))).toEqual({ runs: [], updates: [] });
    // The size limit changes what is applied (a fresh daemon decodes, or sets aside, other messages).
    expect(runs(before, of((o) => onKafka(o, { deadLetterTopic: "dlq", maxMessageBytes: 2000 }))).runs.map((r) => r.spec.kind)).toEqual(expect.arrayContaining(["remove-source", "reread"]));
    expect(runs(before, of((o) => onKafka(o, { format: "debezium-unwrapped" }))).runs.map((r) => r.spec.kind)).toEqual(expect.arrayContaining(["remove-source", "reread"]));
    const hook = of(() => undefined);
    expect(runs(hook, of((o) => ((find(o, "crm").options as Obj).batchSize = 10)))).toEqual({ runs: [], updates: [] });
    expect(runs(hook, of((o) => ((find(o, "crm").options as Obj).path = "/v2"))).runs.map((r) => `${r.spec.kind} ${r.reason}`)).toEqual(["export its type, app (or where the app points) or options changed: every record is sent again"]);
  });

  it("recorded by a state before they were left out, change nothing either", () => {
    const recorded = of((o) => onKafka(o, { deadLetterTopic: "dlq", maxMessageBytes: 1000 }), false);
    expect(recorded.sources.purchases_table?.options).toMatchObject({ deadLetterTopic: "dlq", maxMessageBytes: 1000, topic: "shop.public.purchases" });
    const next = of((o) => onKafka(o, { deadLetterTopic: "dlq", maxMessageBytes: 1000 }));
    // No Run; the destination, recorded without its app's identity (by an earlier version), is recorded
    // again with it, and the postgres-cdc source without what its app shapes of its rows.
    expect(runs(withoutOperational(recorded, operational), next)).toEqual({
      runs: [],
      updates: [
        { cls: "destinations", id: "crm", definition: next.destinations.crm },
        { cls: "sources", id: "users_table", definition: next.sources.users_table },
      ],
    });
    // Unstripped, the two differ: the state's source would be removed and read again.
    expect(runs(recorded, next).runs.map((r) => r.spec.kind)).toContain("remove-source");
    // An unsettled entry recorded with them is compared without them: not cut short.
    const source = recorded.sources.purchases_table as NonNullable<Definitions["sources"][string]>;
    const unsettled: Unsettled[] = [{ cls: "sources", id: "purchases_table", target: source, seen: source, redo: false }];
    expect(planRuns(withoutOperational(recorded, operational), next, { needsReread: () => true, unsettled: unsettledWithoutOperational(unsettled, operational, recorded) }).runs).toEqual([]);
    // One whose target differs from what the state recorded in them alone was planned by a version that
    // counted them: the source's removal and re-read were part-way, so it is redone whole.
    const dlq2 = { ...source, options: { ...source.options, deadLetterTopic: "dlq2" } };
    const partWay: Unsettled[] = [{ cls: "sources", id: "purchases_table", target: dlq2, seen: dlq2, redo: false }];
    const redone = planRuns(withoutOperational(recorded, operational), next, { needsReread: () => true, unsettled: unsettledWithoutOperational(partWay, operational, recorded) });
    expect(redone.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(expect.arrayContaining(["remove-source source purchases_table", "reread source purchases_table"]));
    expect(redone.runs.every((r) => r.reason.startsWith("a change to it was cut short") || r.spec.kind !== "remove-source")).toBe(true);
    expect(planRuns(withoutOperational(recorded, operational), next, { needsReread: () => true, unsettled }).runs.length).toBeGreaterThan(0);
  });
});

describe("what a source's app leaves out of its rows", () => {
  const catalog = builtinComponents();
  const of = (change: (o: Obj[]) => void, withCatalog = true): Definitions => definitionsChanged(change, withCatalog ? catalog : undefined);
  const excluding = (list: string) => (o: Obj[]) => void ((find(o, "shop_db").options as Obj).debezium = { "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "plugin.name": "pgoutput", "column.exclude.list": list });
  const planned = (before: Definitions, after: Definitions) => planRuns(before, after, { needsReread: () => true }).runs.map((r) => `${r.spec.kind} ${r.target}`);

  it("is part of a postgres-cdc source's definition: column.exclude.list changed, its sources are read again, as a fresh daemon reads them", () => {
    const before = of(() => undefined);
    expect(before.sources.users_table?.reads).toEqual({ columnExcludeList: [] });
    const after = of(excluding("public.users.name"));
    expect(after.sources.users_table?.reads).toEqual({ columnExcludeList: ["public.users.name"] });
    // Before 2026-12-03 this planned nothing: the records kept the names a fresh daemon never reads.
    expect(planned(before, after)).toEqual(expect.arrayContaining(["remove-source source users_table", "reread source users_table", "remove-source source purchases_table", "reread source purchases_table"]));
    expect(planned(after, before)).toEqual(expect.arrayContaining(["reread source users_table", "reread source purchases_table"]));
    expect(planned(after, of(excluding("public.users.name")))).toEqual([]);
  });

  it("recorded by an earlier version without it, is taken to be what the config says, and recorded", () => {
    // As the state holds it (its operational options left out as Runs reads them, see above).
    const recorded = withoutOperational(of(excluding("public.users.name"), false), operationalOptionsOf(catalog));
    expect(recorded.sources.users_table?.reads).toBeUndefined();
    const next = of(excluding("public.users.name"));
    const plan = planRuns(recorded, next, { needsReread: () => true });
    expect(plan.runs).toEqual([]);
    expect(plan.updates).toEqual(expect.arrayContaining([{ cls: "sources", id: "users_table", definition: next.sources.users_table }]));
  });
});

describe("where a destination's app points", () => {
  const catalog = builtinComponents();
  const of = (change: (o: Obj[]) => void, withCatalog = true): Definitions => definitionsChanged(change, withCatalog ? catalog : undefined);
  const hooks = (o: Obj[]) => find(o, "hooks").options as Obj;
  const onTable = (o: Obj[], connectionString: string) => {
    (find(o, "shop_db").options as Obj).connectionString = connectionString;
    Object.assign(find(o, "crm"), { type: "postgres-table", appId: "shop_db", options: { table: "crm", primaryKey: "id" } });
  };
  const planned = (before: Definitions, after: Definitions) => planRuns(before, after, { needsReread: () => true }).runs.map((r) => `${r.spec.kind} ${r.target} reset=${(r.spec as { reset?: boolean }).reset === true}`);

  it("is part of its definition: pointed elsewhere, it is sent every record again from nothing, as a fresh daemon would", () => {
    const before = of(() => undefined);
    expect(before.destinations.crm?.app).toEqual({ url: "https://hooks.example.com/grouparoo" });
    // Before 2026-12-03 this planned nothing: the new endpoint got only the records that changed next.
    expect(planned(before, of((o) => (hooks(o).url = "https://hooks.example.org/other")))).toEqual(["export destination crm reset=true"]);
    // How the app is reached is not where it points: nor a token in the URL's query or credentials in it.
    expect(planned(before, of((o) => Object.assign(hooks(o), { secret: "an0ther-s3cret", timeoutMs: 500, headers: { "x-team": "a" } })))).toEqual([]);
    expect(planned(before, of((o) => (hooks(o).url = "https://user:pw@hooks.example.com/grouparoo?token=t2")))).toEqual([]);

    const table = of((o) => onTable(o, "postgres://postgres:one@127.0.0.1:5432/crm"));
    expect(table.destinations.crm?.app).toEqual({ host: "127.0.0.1", port: 5432, database: "crm" });
    expect(planned(table, of((o) => onTable(o, "postgres://postgres:two@127.0.0.1/crm?sslmode=require")))).toEqual([]);
    expect(planned(table, of((o) => onTable(o, "postgres://postgres:one@127.0.0.1:5432/crm2")))).toEqual(["export destination crm reset=true"]);
    expect(planned(table, of((o) => onTable(o, "postgres://postgres:one@10.0.0.7:5432/crm")))).toEqual(["export destination crm reset=true"]);
  });

  it("recorded by an earlier version without it, is taken to be where the config points, and recorded", () => {
    // As the state holds it (its operational options left out as Runs reads them, see above).
    const recorded = withoutOperational(of(() => undefined, false), operationalOptionsOf(catalog));
    expect(recorded.destinations.crm?.app).toBeUndefined();
    const next = of(() => undefined);
    expect(planRuns(recorded, next, { needsReread: () => true })).toEqual({
      runs: [],
      updates: [
        { cls: "destinations", id: "crm", definition: next.destinations.crm },
        { cls: "sources", id: "users_table", definition: next.sources.users_table },
        { cls: "sources", id: "purchases_table", definition: next.sources.purchases_table },
      ],
    });
    // With another change, its Run records it.
    const changed = of((o) => (find(o, "crm").syncMode = "additive"));
    const plan = planRuns(recorded, changed, { needsReread: () => true });
    expect(plan.runs.map((r) => `${r.spec.kind} ${r.reason}`)).toEqual(["export its mapping, groups, collection or sync mode changed"]);
    expect(plan.runs[0]?.updates).toEqual([{ cls: "destinations", id: "crm", definition: changed.destinations.crm }]);
    expect(plan.updates.filter((u) => u.cls === "destinations")).toEqual([]);
    // An unsettled target recorded without it is not a change cut short.
    const unsettled: Unsettled[] = [{ cls: "destinations", id: "crm", target: recorded.destinations.crm ?? null, seen: recorded.destinations.crm as NonNullable<Definitions["destinations"][string]>, redo: false }];
    expect(planRuns(recorded, next, { needsReread: () => true, unsettled }).runs).toEqual([]);
  });
});

describe("removedThenReadWhole", () => {
  const moved = (o: Obj[], ...ids: string[]) => {
    o.push({ ...find(o, "shop_db"), id: "shop_b" });
    for (const id of ids) find(o, id).appId = "shop_b";
  };
  const held = (change: (o: Obj[]) => void, fresh: string[]) => {
    const before = definitions(validConfigObjects());
    const after = definitionsChanged(change);
    const needsReread = (id: string) => !fresh.includes(id);
    return removedThenReadWhole(planRuns(before, after, { needsReread }), after, needsReread);
  };

  it("names the sources whose removal Runs are planned while their connector reads them whole", () => {
    // Moved to a new app (a new slot): removed, and read by its snapshot; the source left on the old app is not.
    expect(held((o) => moved(o, "users_table"), ["users_table"])).toEqual(["users_table"]);
    expect(held((o) => moved(o, "users_table", "purchases_table"), ["users_table", "purchases_table"])).toEqual(["purchases_table", "users_table"]);
    // A property moved onto a source read whole: its removal takes the values the new rows bring.
    expect(held((o) => moved(o, "purchases_table"), ["purchases_table"])).toEqual(["purchases_table"]);
  });

  it("names none that a Run reads again, or that streams on where it was", () => {
    // Past its rows: a re-read Run after the removal reads it.
    expect(held((o) => moved(o, "users_table"), [])).toEqual([]);
    // A property removed: nothing read whole.
    expect(held((o) => o.splice(o.indexOf(find(o, "first_name")), 1), ["users_table"])).toEqual([]);
    // A source added on a new app: nothing removed.
    expect(held((o) => o.push({ ...find(o, "shop_db"), id: "shop_b" }, { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "shop_b", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } }), ["refunds_table"])).toEqual([]);
  });

  it("names, read again or not, the sources whose rows a removal drops as another model's: a model renamed, a source moved to another model", () => {
    // The model renamed: its removal drops its sources' rows whole, which stream under the new model
    // meanwhile (a purchase streamed in was counted, dropped, and counted again by the re-read).
    const renamed = (o: Obj[]) => {
      for (const x of o) {
        if (x.class === "model" && x.id === "users") x.id = "people";
        else if (x.modelId === "users") x.modelId = "people";
      }
    };
    expect(held(renamed, [])).toEqual(["purchases_table", "users_table"]);
    expect(held(renamed, ["users_table", "purchases_table"])).toEqual(["purchases_table", "users_table"]);
    // A source of many rows per record moved to another model: its removal from the old one drops its rows.
    const moved = (o: Obj[]) => {
      o.push({ class: "model", id: "customers", type: "profile" }, { class: "source", id: "customers_table", type: "postgres-cdc", appId: "shop_db", modelId: "customers", options: { table: "users" }, mapping: { id: "customer_id" } }, { class: "property", id: "customer_id", type: "integer", unique: true, sourceId: "customers_table", options: { column: "id" } });
      const purchases = find(o, "purchases_table");
      purchases.modelId = "customers";
      purchases.mapping = { user_id: "customer_id" };
      for (let i = o.length - 1; i >= 0; i--) {
        const x = o[i] as Obj;
        if ((x.class === "group" || x.class === "destination") && JSON.stringify(x).match(/lifetime_value|purchase_count|skus|last_purchase_at|high_value|recent_buyers/)) o.splice(i, 1);
      }
    };
    expect(held(moved, ["customers_table"])).toEqual(["purchases_table"]);
    // A model whose removal was cut short, the config back to it: removed whole and built again, its sources read again.
    const before = definitions(validConfigObjects());
    const unsettled: Unsettled[] = [{ cls: "models", id: "users", target: null, seen: before.models.users as NonNullable<Definitions["models"][string]>, redo: false }];
    const rebuilt = planRuns(before, before, { needsReread: () => true, unsettled });
    expect(rebuilt.runs.map((r) => r.spec.kind)).toContain("remove-model");
    expect(removedThenReadWhole(rebuilt, before, () => true)).toEqual(["purchases_table", "users_table"]);
    // Replaced on its model (another mapping) and read again: its removal takes its rows out of their records as they go.
    expect(held((o) => (find(o, "purchases_table").options = { table: "public.orders" }), [])).toEqual([]);
  });
});
