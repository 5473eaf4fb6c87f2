// Helpers for core tests: a small users + purchases domain, change builders, a from-scratch
// recomputation of what the state must hold, and a dump of what it does hold.
import type { AggregateSpec } from "../../core/aggregates.js";
import { aggregateFromScratch } from "../../core/aggregates.js";
import type { Change, ChangeOp, Row } from "../../core/change.js";
import { compileDomain, type Domain, type RecordValueMap } from "../../core/domain.js";
import { compareIds } from "../../core/keys.js";
import { isMember } from "../../core/rules.js";
import { normalizeArray, normalizeValue } from "../../core/values.js";
import type { PropertyValue } from "../../core/vocabulary.js";
import { validateObjects } from "../../daemon/config/validate.js";
import type { Store } from "../../state/store.js";
import { asRaw } from "./config.js";

export const DAY = 86_400_000;

type Obj = Record<string, unknown>;

/** users (primary, by id) and purchases (many per user, by user_id), with ten groups. */
export function coreConfigObjects(extra: Obj[] = []): Obj[] {
  return [
    { class: "app", id: "db", type: "postgres", options: { database: "shop" } },
    { class: "app", id: "hooks", type: "webhook", options: { url: "https://hooks.example.com" } },
    { class: "model", id: "users" },
    { class: "source", id: "users_table", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
    { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "purchases" }, mapping: { user_id: "user_id" } },
    { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
    { class: "property", id: "email", type: "email", unique: true, sourceId: "users_table", options: { column: "email" } },
    { class: "property", id: "first_name", type: "string", sourceId: "users_table", options: { column: "first_name" } },
    { class: "property", id: "vip", type: "boolean", sourceId: "users_table", options: { column: "vip" } },
    { class: "property", id: "purchase_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
    {
      class: "property",
      id: "lifetime_value",
      type: "float",
      sourceId: "purchases_table",
      options: { column: "amount", aggregationMethod: "sum" },
      filters: [{ key: "state", op: "eq", match: "paid" }],
    },
    { class: "property", id: "max_amount", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "max" } },
    {
      class: "property",
      id: "last_purchase_at",
      type: "date",
      sourceId: "purchases_table",
      options: { column: "created_at", aggregationMethod: "most recent value", sortColumn: "created_at" },
    },
    {
      class: "property",
      id: "last_sku",
      type: "string",
      sourceId: "purchases_table",
      options: { column: "sku", aggregationMethod: "most recent value", sortColumn: "created_at" },
    },
    { class: "property", id: "skus", type: "string", isArray: true, sourceId: "purchases_table", options: { column: "sku" } },
    { class: "group", id: "high_value", modelId: "users", rules: [{ propertyId: "lifetime_value", op: "gte", match: 100 }] },
    { class: "group", id: "buyers", modelId: "users", rules: [{ propertyId: "purchase_count", op: "gt", match: 0 }] },
    { class: "group", id: "vips", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] },
    { class: "group", id: "example_emails", modelId: "users", rules: [{ propertyId: "email", op: "like", match: "%@example.com" }] },
    { class: "group", id: "no_email", modelId: "users", rules: [{ propertyId: "email", op: "eq", match: null }] },
    { class: "group", id: "recent", modelId: "users", rules: [{ propertyId: "last_purchase_at", op: "relative_gt", relativeMatchNumber: 3, relativeMatchUnit: "days" }] },
    { class: "group", id: "bought_a", modelId: "users", rules: [{ propertyId: "skus", op: "eq", match: "A" }] },
    { class: "group", id: "never_a", modelId: "users", rules: [{ propertyId: "skus", op: "ne", match: "A" }] },
    {
      class: "group",
      id: "vip_or_big",
      modelId: "users",
      matchType: "any",
      rules: [
        { propertyId: "vip", op: "eq", match: true },
        { propertyId: "max_amount", op: "gt", match: 50 },
      ],
    },
    { class: "group", id: "named_a", modelId: "users", rules: [{ propertyId: "first_name", op: "iLike", match: "a%" }] },
    {
      class: "destination",
      id: "crm",
      type: "webhook",
      appId: "hooks",
      modelId: "users",
      collection: "model",
      syncMode: "sync",
      options: {},
      mapping: { id: "user_id", email: "email", ltv: "lifetime_value" },
      destinationGroupMemberships: { "High Value": "high_value", Recent: "recent" },
    },
    ...extra,
  ];
}

export function coreDomain(extra: Obj[] = []): Domain {
  const result = validateObjects(asRaw(coreConfigObjects(extra)));
  if (!result.config) throw new Error(`test config invalid: ${JSON.stringify(result.issues)}`);
  return compileDomain(result.config);
}

let position = 0;
export function change(sourceId: string, op: ChangeOp, key: string, after: Row | null, commitTime = 1_700_000_000_000, before: Row | null = null): Change {
  position += 1;
  return { sourceId, op, key, before, after, position: { stream: "db", position: String(position) }, commitTime };
}

export const user = (id: number, row: Row = {}, commitTime?: number) => change("users_table", "insert", String(id), { id, ...row }, commitTime);
export const purchase = (id: number, row: Row, commitTime?: number) => change("purchases_table", "insert", String(id), { id, ...row }, commitTime);

export interface ExpectedRecord {
  values: RecordValueMap;
  groups: string[];
}

/**
 * What the state must hold for these final rows, computed from scratch. A unique value several
 * records carry is held by the lowest id (compareIds); the others hold null.
 */
export function recompute(domain: Domain, rows: ReadonlyMap<string, ReadonlyMap<string, Row>>, now: number): Map<string, ExpectedRecord> {
  const model = domain.models.get("users");
  if (!model) throw new Error("no users model");
  const normalize = (type: Parameters<typeof normalizeValue>[0], isArray: boolean, raw: unknown): PropertyValue | PropertyValue[] =>
    isArray ? normalizeArray(type, raw).values : normalizeValue(type, raw).value;
  const records = new Map<string, ExpectedRecord>();
  const byUnique = new Map<string, string>();
  const primary = domain.sources.get(model.primarySourceId);
  for (const rowKey of [...(rows.get(model.primarySourceId)?.keys() ?? [])].sort(compareIds)) {
    const row = rows.get(model.primarySourceId)?.get(rowKey) ?? {};
    const values: RecordValueMap = {};
    for (const p of primary?.properties ?? []) values[p.id] = normalize(p.type, p.isArray, row[p.column]);
    for (const p of primary?.properties ?? []) {
      if (!p.unique || values[p.id] === null) continue;
      const key = `${p.id}\u0000${String(values[p.id])}`;
      if (byUnique.has(key)) values[p.id] = null; // a lower id holds it (Duplicate Value)
      else byUnique.set(key, rowKey);
    }
    records.set(rowKey, { values, groups: [] });
  }
  for (const source of domain.sources.values()) {
    if (source.primary) continue;
    const perRecord = new Map<string, Map<string, Row>>();
    for (const [rowKey, row] of rows.get(source.id) ?? []) {
      let recordId: string | undefined;
      for (const m of source.mapping) {
        const v = normalizeValue(m.type, row[m.column]).value;
        if (v !== null) {
          recordId = byUnique.get(`${m.propertyId}\u0000${String(v)}`);
          break;
        }
      }
      if (recordId === undefined) continue;
      const map = perRecord.get(recordId) ?? new Map<string, Row>();
      map.set(rowKey, row);
      perRecord.set(recordId, map);
    }
    for (const [recordId, record] of records) {
      for (const p of source.properties) {
        const spec: AggregateSpec = p.aggregate;
        record.values[p.id] = normalize(p.type, p.isArray, aggregateFromScratch(spec, perRecord.get(recordId) ?? new Map()));
      }
    }
  }
  for (const [recordId, record] of records) {
    const values = { ...record.values, grouparooId: recordId };
    record.groups = model.groups.filter((g) => isMember(g, values, now)).map((g) => g.id).sort();
  }
  return records;
}

/** What the store holds for the users model, in the same shape (createdAt left out). */
export function dumpRecords(store: Store): Map<string, ExpectedRecord> {
  const out = new Map<string, ExpectedRecord>();
  for (const record of store.recordsOf("users")) out.set(record.id, { values: record.values, groups: record.groups });
  return out;
}

/** A deterministic pseudo-random stream of changes (mulberry32), position = index in the stream. */
export function generateChanges(seed: number, count: number, users = 40, purchases = 120): Change[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const live = { users_table: new Set<number>(), purchases_table: new Set<number>() };
  const changes: Change[] = [];
  const base = Date.UTC(2026, 10, 1);
  for (let i = 0; i < count; i += 1) {
    const isUser = random() < 0.35;
    const source = isUser ? "users_table" : "purchases_table";
    const key = isUser ? 1 + Math.floor(random() * users) : 1000 + Math.floor(random() * purchases);
    const exists = live[source].has(key);
    const remove = exists && random() < 0.15;
    const row: Row | null = remove
      ? null
      : isUser
        ? { id: key, email: pick([null, `u${key}@example.com`, `u${key}@other.org`, `shared${key % 3}@example.com`]), first_name: pick(["Ada", "alan", null]), vip: pick([true, false, null]) }
        : {
            id: key,
            user_id: 1 + Math.floor(random() * users),
            amount: pick([10, 25.5, 60, 120, null]),
            state: pick(["paid", "refunded"]),
            sku: pick(["A", "B", null]),
            created_at: new Date(base - Math.floor(random() * 6 * DAY)),
          };
    if (row) live[source].add(key);
    else live[source].delete(key);
    changes.push({
      sourceId: source,
      op: row ? (exists ? "update" : "insert") : "delete",
      key: String(key),
      before: null,
      after: row,
      position: { stream: "db", position: String(i) },
      commitTime: base + i,
    });
  }
  return changes;
}

/** The final rows of each source after the first `upTo` changes. */
export function rowsAfter(changes: readonly Change[], upTo: number): Map<string, Map<string, Row>> {
  const rows = new Map<string, Map<string, Row>>([
    ["users_table", new Map()],
    ["purchases_table", new Map()],
  ]);
  for (const c of changes.slice(0, upTo)) {
    const map = rows.get(c.sourceId) as Map<string, Row>;
    if (c.after) map.set(c.key, c.after);
    else map.delete(c.key);
  }
  return rows;
}
