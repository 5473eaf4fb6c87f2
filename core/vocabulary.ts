// The domain's closed vocabularies (Grouparoo's): property types, group-rule operators per type,
// aggregation methods, filter operators, relative-date units, sync modes and collections. The config
// schema and the pure domain logic both read them from here, so they cannot drift apart.

export const PROPERTY_TYPES = ["boolean", "date", "email", "float", "integer", "phoneNumber", "string", "url"] as const;
export type PropertyType = (typeof PROPERTY_TYPES)[number];

const TEXT_OPERATORS = [
  "exists",
  "notExists",
  "eq",
  "ne",
  "like",
  "notLike",
  "iLike",
  "notILike",
  "startsWith",
  "endsWith",
  "substring",
] as const;
const NUMBER_OPERATORS = ["exists", "notExists", "eq", "ne", "gt", "lt", "gte", "lte"] as const;
const DATE_OPERATORS = [...NUMBER_OPERATORS, "relative_gt", "relative_lt"] as const;

/** Group-rule operators valid for each property type (ARCHITECTURE.md, "Domain semantics"). */
export const RULE_OPERATORS_BY_TYPE: Readonly<Record<PropertyType, readonly RuleOperator[]>> = {
  boolean: ["exists", "notExists", "eq", "ne"],
  integer: NUMBER_OPERATORS,
  float: NUMBER_OPERATORS,
  string: TEXT_OPERATORS,
  email: TEXT_OPERATORS,
  phoneNumber: TEXT_OPERATORS,
  url: TEXT_OPERATORS,
  date: DATE_OPERATORS,
};

export const RULE_OPERATORS = [...new Set<string>([...TEXT_OPERATORS, ...DATE_OPERATORS])] as readonly string[] as readonly RuleOperator[];
export type RuleOperator = (typeof TEXT_OPERATORS)[number] | (typeof DATE_OPERATORS)[number];

export const RELATIVE_OPERATORS = ["relative_gt", "relative_lt"] as const;
export const RELATIVE_UNITS = ["days", "weeks", "months", "quarters", "years"] as const;
export type RelativeUnit = (typeof RELATIVE_UNITS)[number];

/** Columns every record has without a source: rules may read them as "top-level" properties. */
export const TOP_LEVEL_RULE_KEYS = { grouparooId: "string", grouparooCreatedAt: "date" } as const satisfies Record<string, PropertyType>;
export type TopLevelRuleKey = keyof typeof TOP_LEVEL_RULE_KEYS;
/** The type of a top-level rule key, or undefined for a property id (`constructor` and `toString` included: own keys only). */
export function topLevelRuleType(key: string): PropertyType | undefined {
  return Object.hasOwn(TOP_LEVEL_RULE_KEYS, key) ? TOP_LEVEL_RULE_KEYS[key as TopLevelRuleKey] : undefined;
}

export const MATCH_TYPES = ["all", "any"] as const;
export type MatchType = (typeof MATCH_TYPES)[number];
export const MAX_GROUP_RULES = 10;

export const AGGREGATION_METHODS = [
  "exact",
  "count",
  "sum",
  "average",
  "min",
  "max",
  "most recent value",
  "least recent value",
] as const;
export type AggregationMethod = (typeof AGGREGATION_METHODS)[number];
/** Aggregations that order the rows and therefore need `sortColumn`. */
export const SORTED_AGGREGATIONS: readonly AggregationMethod[] = ["most recent value", "least recent value"];

export const FILTER_OPERATORS = ["eq", "ne", "gt", "gte", "lt", "lte", "substring", "notSubstring", "in", "exists", "notExists"] as const;
export type FilterOperator = (typeof FILTER_OPERATORS)[number];

export const SYNC_MODES = ["sync", "additive", "enrich"] as const;
export type SyncMode = (typeof SYNC_MODES)[number];
export const COLLECTIONS = ["model", "group"] as const;
export type Collection = (typeof COLLECTIONS)[number];

/** A normalised property value: dates are epoch milliseconds; null is SQL NULL. */
export type PropertyScalar = string | number | boolean;
export type PropertyValue = PropertyScalar | null;
