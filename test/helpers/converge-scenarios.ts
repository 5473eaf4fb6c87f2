// The config changes the convergence tests make, one scenario per kind of change (issue #11's
// matrix), each from the shop config, and the eight cases that once left the state wrong or stopped
// the daemon for good.
import { find, shopConfig, type ConvergenceScenario, type Obj } from "./converge.js";

const change = (edit: (objects: Obj[]) => void): Obj[] => {
  const objects = structuredClone(shopConfig());
  edit(objects);
  return objects;
};
const without = (objects: Obj[], ...ids: string[]) => objects.filter((o) => !ids.includes(String(o.id)));
const options = (o: Obj) => o.options as Obj;
const destination = (o: Obj[]) => find(o, "crm", "destination");

const purchasesProperty = (id: string, type: string, method: string, extra: Obj = {}): Obj => ({
  class: "property",
  id,
  type,
  sourceId: "purchases_table",
  options: { column: "amount", aggregationMethod: method, ...(method.endsWith("recent value") ? { sortColumn: "created_at" } : {}) },
  ...extra,
});

const refunds: Obj[] = [
  { class: "source", id: "refunds_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "refunds" }, mapping: { user_id: "user_id" } },
  { class: "property", id: "refund_total", type: "float", sourceId: "refunds_table", options: { column: "amount", aggregationMethod: "sum" } },
  { class: "property", id: "refund_count", type: "integer", sourceId: "refunds_table", options: { column: "id", aggregationMethod: "count" } },
];

const tracked = (o: Obj[], groupId: string) => Object.assign(destination(o), { collection: "group", groupId });
const mode = (syncMode: string) => (o: Obj[]) => void (destination(o).syncMode = syncMode);

export const SCENARIOS: Record<string, ConvergenceScenario> = {
  "add a plain property": { configs: [shopConfig(), change((o) => o.push({ class: "property", id: "last_name", type: "string", sourceId: "users_table", options: { column: "last_name" } }))] },
  ...Object.fromEntries(
    (
      [
        ["count", "integer"],
        ["sum", "float"],
        ["average", "float"],
        ["min", "float"],
        ["max", "float"],
        ["most recent value", "float"],
        ["least recent value", "float"],
        ["exact", "float"],
      ] as const
    ).map(([method, type]) => [
      `add a ${method} aggregate`,
      { configs: [shopConfig(), change((o) => o.push(purchasesProperty("added", type, method, method === "exact" ? { isArray: true } : { filters: [{ key: "state", op: "ne", match: "failed" }] })))] },
    ]),
  ),
  "change an aggregation method": { configs: [shopConfig(), change((o) => (options(find(o, "max_amount")).aggregationMethod = "min"))] },
  "change a filter": { configs: [shopConfig(), change((o) => (find(o, "lifetime_value").filters = [{ key: "state", op: "ne", match: "failed" }]))] },
  "change a column": { configs: [shopConfig(), change((o) => (options(find(o, "lifetime_value")).column = "discount"))] },
  "change a property's type": { configs: [shopConfig(), change((o) => (find(o, "name").type = "email"))] },
  "remove a property": { configs: [shopConfig(), change((o) => o.splice(o.indexOf(find(o, "max_amount")), 1))] },
  "add a source on a table with rows": { configs: [shopConfig(), change((o) => o.push(...structuredClone(refunds)))] },
  "remove a source": { configs: [change((o) => o.push(...structuredClone(refunds))), shopConfig()] },
  "re-add a removed source": { configs: [change((o) => o.push(...structuredClone(refunds))), shopConfig(), change((o) => o.push(...structuredClone(refunds)))] },
  "change a source's table": {
    configs: [change((o) => o.push(...structuredClone(refunds))), change((o) => o.push(...structuredClone(refunds).map((x) => (x.id === "refunds_table" ? { ...x, options: { table: "purchases" } } : x))))],
  },
  "change a group's rules": { configs: [shopConfig(), change((o) => ((find(o, "high_value").rules as Obj[])[0] = { propertyId: "lifetime_value", op: "gte", match: 60 }))] },
  "add a group": { configs: [shopConfig(), change((o) => o.push({ class: "group", id: "big_spenders", modelId: "users", rules: [{ propertyId: "max_amount", op: "gt", match: 80 }] }))] },
  "remove a group": {
    configs: [shopConfig(), change((o) => {
      delete (destination(o).destinationGroupMemberships as Obj).VIP;
      o.splice(o.indexOf(find(o, "vips")), 1);
    })],
  },
  "re-add a removed group": {
    configs: [
      shopConfig(),
      change((o) => {
        delete (destination(o).destinationGroupMemberships as Obj).VIP;
        o.splice(o.indexOf(find(o, "vips")), 1);
      }),
      shopConfig(),
    ],
  },
  "change a destination's mapping": {
    configs: [shopConfig(), change((o) => (destination(o).mapping = { id: "user_id", email: "email", name: "email", purchases: "purchase_count" }))],
    unmapped: ["ltv"],
  },
  "change a destination's tracked group": { configs: [change((o) => tracked(o, "vips")), change((o) => tracked(o, "high_value"))] },
  "track a group where the destination took every record": { configs: [shopConfig(), change((o) => tracked(o, "high_value"))] },
  "change a destination's group memberships": { configs: [shopConfig(), change((o) => (destination(o).destinationGroupMemberships = { Spender: "high_value" }))] },
  "sync mode: sync to additive": { configs: [change((o) => tracked(o, "high_value")), change((o) => (tracked(o, "high_value"), mode("additive")(o)))], oracleSeed: "copy" },
  "sync mode: additive to sync": { configs: [change((o) => (tracked(o, "high_value"), mode("additive")(o))), change((o) => tracked(o, "high_value"))] },
  "sync mode: sync to enrich": { configs: [shopConfig(), change(mode("enrich"))], oracleSeed: "copy" },
  "sync mode: enrich to sync": { configs: [shopConfig(), change(mode("enrich")), shopConfig()] },
  "sync mode: additive to enrich": { configs: [change(mode("additive")), change(mode("enrich"))], oracleSeed: "copy" },
  "sync mode: enrich to additive": { configs: [shopConfig(), change(mode("enrich")), change(mode("additive"))], oracleSeed: "copy" },
  "add a destination": {
    configs: [
      without(shopConfig(), "crm"),
      shopConfig(),
    ],
  },
};
