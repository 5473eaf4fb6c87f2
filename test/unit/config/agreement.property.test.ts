// validate and run agree: for generated configs (a valid one with random rules, aggregations, filters
// and types), a config that validates compiles into a domain and its connectors can be created (what
// `run` does before it connects), and a config whose groups or aggregations the compilers refuse never
// validates. The compilers are called here directly on the raw objects, not through the validator.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { emptyAggregate, type AggregateSpec } from "../../../core/aggregates.js";
import { compileDomain } from "../../../core/domain.js";
import { compileGroup, type GroupRuleSpec } from "../../../core/rules.js";
import { AGGREGATION_METHODS, FILTER_OPERATORS, PROPERTY_TYPES, RELATIVE_UNITS, RULE_OPERATORS, TOP_LEVEL_RULE_KEYS, type PropertyType } from "../../../core/vocabulary.js";
import { builtinComponents } from "../../../connectors/registry.js";
import { createDestinations, createSources } from "../../../daemon/connectors.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { pino } from "pino";
import { asRaw, validConfigObjects } from "../../helpers/config.js";

type Obj = Record<string, unknown>;

const scalarMatch = fc.oneof(
  fc.constantFrom("2020-02-30", "2024-01-01", "2024-01-01T10:00:00Z", "2024-13-01", "yesterday", "null", "NULL", "", "1e400", "true", "false", "a%", "ab\\", "12", "-3.5"),
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom(1.5, 1_700_000_000_000, true, false, null),
);

const rule = fc.record(
  {
    propertyId: fc.constantFrom("lifetime_value", "purchase_count", "first_name", "email", "vip", "signed_up_at", "last_purchase_at", "skus", "grouparooId", "grouparooCreatedAt"),
    op: fc.constantFrom(...RULE_OPERATORS),
    match: scalarMatch,
    relativeMatchNumber: fc.integer({ min: 0, max: 4 }),
    relativeMatchUnit: fc.constantFrom(...RELATIVE_UNITS),
  },
  { requiredKeys: ["propertyId", "op"] },
);

const filter = fc.record(
  { key: fc.constantFrom("state", "amount"), op: fc.constantFrom(...FILTER_OPERATORS), match: fc.oneof(scalarMatch, fc.array(fc.constantFrom("a", 1, true), { maxLength: 2 })) },
  { requiredKeys: ["key", "op"] },
);

/** Each part replaced or, often, left as the valid config has it (so both outcomes are common). */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { freq: 2 });
const mutation = fc.record({
  rules: sometimes(fc.array(rule, { minLength: 1, maxLength: 2 })),
  matchType: fc.constantFrom("all", "any"),
  aggregation: sometimes(
    fc.record({
      method: fc.constantFrom(...AGGREGATION_METHODS),
      type: fc.constantFrom(...PROPERTY_TYPES),
      sortColumn: fc.option(fc.constantFrom("created_at", "")),
      isArray: fc.boolean(),
    }),
  ),
  filters: sometimes(fc.array(filter, { maxLength: 2 })),
});

/** The valid config with one group's rules and one property's aggregation replaced. */
function configOf(m: typeof mutation extends fc.Arbitrary<infer M> ? M : never): Obj[] {
  const objects = validConfigObjects();
  const group = objects.find((o) => o.id === "high_value") as Obj;
  if (m.rules) group.rules = m.rules;
  group.matchType = m.matchType;
  const property = objects.find((o) => o.id === "lifetime_value") as Obj;
  if (m.aggregation) {
    const a = m.aggregation;
    property.type = a.type;
    property.isArray = a.isArray;
    property.options = { column: "amount", aggregationMethod: a.method, ...(a.sortColumn === null ? {} : { sortColumn: a.sortColumn }) };
  }
  if (m.filters) property.filters = m.filters;
  return objects;
}

/** What the compilers say of the raw objects, without the validator: the first refusal, if any. */
function compilersRefuse(objects: Obj[]): string | undefined {
  const properties = new Map(objects.filter((o) => o.class === "property").map((o) => [o.id as string, o]));
  for (const group of objects.filter((o) => o.class === "group")) {
    const rules = (group.rules as Obj[]).map((r): GroupRuleSpec => {
      const top = (TOP_LEVEL_RULE_KEYS as Record<string, PropertyType>)[r.propertyId as string];
      const property = properties.get(r.propertyId as string);
      return { key: r.propertyId as string, type: top ?? (property?.type as PropertyType), isArray: property?.isArray === true, ...(r as object) } as GroupRuleSpec;
    });
    try {
      compileGroup({ id: group.id as string, matchType: (group.matchType as "all" | "any") ?? "all", rules });
    } catch (error) {
      return (error as Error).message;
    }
  }
  for (const property of properties.values()) {
    const options = property.options as Obj;
    if (property.sourceId !== "purchases_table") continue;
    const spec = { method: options.aggregationMethod ?? "exact", column: options.column, sortColumn: options.sortColumn, filters: property.filters ?? [], isArray: property.isArray === true } as AggregateSpec;
    if (spec.sortColumn === undefined) delete spec.sortColumn;
    try {
      emptyAggregate(spec);
    } catch (error) {
      return (error as Error).message;
    }
  }
  return undefined;
}

describe("validate and run agree", () => {
  it("a config that validates compiles and its connectors can be created; one the compilers refuse never validates", () => {
    const seen = { valid: 0, invalid: 0 };
    fc.assert(
      fc.property(mutation, (m) => {
        const objects = configOf(m);
        const result = validateObjects(asRaw(objects));
        const refused = compilersRefuse(objects);
        if (refused !== undefined) expect(result.config, `the compilers refuse (${refused}) but the config validated`).toBeUndefined();
        if (!result.config) {
          seen.invalid += 1;
          expect(result.issues.some((i) => i.severity === "error")).toBe(true);
          return;
        }
        seen.valid += 1;
        expect(result.domain).toBeDefined();
        expect(() => compileDomain(result.config ?? validateObjects([]).config ?? ({} as never))).not.toThrow();
        const registry = builtinComponents();
        const logger = pino({ level: "silent" });
        const sources = createSources(result.config, registry, new Map(), logger, {});
        const destinations = createDestinations(result.config, registry, logger);
        expect(sources.connectors.length).toBeGreaterThan(0);
        expect(destinations).toHaveLength(1);
      }),
      { numRuns: 500 },
    );
    // Both sides were exercised.
    expect(seen.valid).toBeGreaterThan(20);
    expect(seen.invalid).toBeGreaterThan(20);
  });
});
