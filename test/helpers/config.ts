// A complete valid config as raw objects (users + purchases, two groups, one destination), for
// tests that break one thing at a time.
import { environmentFields, interpolate, type RawObject } from "../../daemon/config/load.js";

/** The environment the test configs' `${VAR}` references read (API keys must come from one). */
export const TEST_ENV: Readonly<Record<string, string>> = { OPS_API_KEY: "0123456789abcdef0123", OTHER_API_KEY: "fedcba9876543210fedc" };

type Obj = Record<string, unknown>;

export function validConfigObjects(): Obj[] {
  return [
    { class: "app", id: "shop_db", type: "postgres", options: { connectionString: "postgres://postgres@127.0.0.1:5432/shop", slot: "shop_slot", publication: "shop_pub" } },
    { class: "app", id: "hooks", type: "webhook", options: { url: "https://hooks.example.com/grouparoo", secret: "s3cret-s3cret" } },
    { class: "app", id: "bus", type: "kafka", options: { brokers: ["127.0.0.1:9092"] } },
    { class: "model", id: "users", type: "profile" },
    { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop_db", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
    { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "shop_db", modelId: "users", options: { table: "public.purchases" }, mapping: { user_id: "user_id" } },
    { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
    { class: "property", id: "email", type: "email", unique: true, sourceId: "users_table", options: { column: "email" } },
    { class: "property", id: "first_name", type: "string", sourceId: "users_table", options: { column: "first_name" } },
    { class: "property", id: "signed_up_at", type: "date", sourceId: "users_table", options: { column: "created_at" } },
    { class: "property", id: "vip", type: "boolean", sourceId: "users_table", options: { column: "vip" } },
    { class: "property", id: "purchase_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
    {
      class: "property",
      id: "lifetime_value",
      type: "float",
      sourceId: "purchases_table",
      options: { column: "amount", aggregationMethod: "sum" },
      filters: [{ key: "state", op: "eq", match: "successful" }],
    },
    {
      class: "property",
      id: "last_purchase_at",
      type: "date",
      sourceId: "purchases_table",
      options: { column: "created_at", aggregationMethod: "most recent value", sortColumn: "created_at" },
    },
    { class: "property", id: "skus", type: "string", isArray: true, sourceId: "purchases_table", options: { column: "sku" } },
    { class: "group", id: "high_value", modelId: "users", matchType: "all", rules: [{ propertyId: "lifetime_value", op: "gte", match: 100 }] },
    {
      class: "group",
      id: "recent_buyers",
      modelId: "users",
      matchType: "any",
      rules: [{ propertyId: "last_purchase_at", op: "relative_gt", relativeMatchNumber: 30, relativeMatchUnit: "days" }],
    },
    {
      class: "destination",
      id: "crm",
      type: "webhook",
      appId: "hooks",
      modelId: "users",
      collection: "group",
      groupId: "high_value",
      syncMode: "sync",
      options: {},
      mapping: { id: "user_id", email: "email" },
      destinationGroupMemberships: { "Recent Buyers": "recent_buyers" },
    },
    { class: "apiKey", id: "ops", type: "full", apiKey: "${OPS_API_KEY}" },
  ];
}

/** The objects as read from a file: `${VAR}` references resolved from TEST_ENV, and noted as readConfig notes them. */
export function asRaw(objects: Obj[], file = "config.yml"): RawObject[] {
  return objects.map((raw, index) => {
    const fromEnvironment = environmentFields(raw);
    const value = interpolate(raw, TEST_ENV, () => undefined) as Obj;
    return { file, index, value, ...(fromEnvironment.length > 0 ? { fromEnvironment } : {}) };
  });
}

export function find(objects: Obj[], id: string): Obj {
  const found = objects.find((o) => o.id === id);
  if (!found) throw new Error(`no object ${id} in the test config`);
  return found;
}
