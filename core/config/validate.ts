// Validation of a whole config, which is also its compilation: the shape of each object against its
// class schema and its type's options schema, then every class's checks across objects (each class in
// its own file under checks/, each component type's own checks with the component), then the domain
// compiled from it by the same compilers the daemon runs. Every problem is collected; none stops the
// others from being found. A config that validates is a config the daemon can start.
import { compileDomain, type Domain } from "../domain.js";
import { checkApiKeys } from "./checks/api-keys.js";
import { checkApps } from "./checks/apps.js";
import { checkDestinations } from "./checks/destinations.js";
import { checkGroups } from "./checks/groups.js";
import { checkModels } from "./checks/models.js";
import { checkPartitions } from "./checks/partitions.js";
import { checkProperties } from "./checks/properties.js";
import { checkSchedules } from "./checks/schedules.js";
import { checkSources } from "./checks/sources.js";
import type { ConfigIssue } from "./issues.js";
import { classSchemas, CONFIG_CLASSES, TYPED_CLASSES, type ApiKeyConfig, type AppConfig, type ConfigClass, type DestinationConfig, type GroupConfig, type ModelConfig, type PropertyConfig, type ScheduleConfig, type SourceConfig, type TypedClass } from "./schema.js";
import { checkShape } from "./shape.js";
import type { ComponentCatalog, Config, OptionsSchema, RawObject } from "./types.js";
import { Validation, type Entry } from "./validation.js";

export interface ValidationResult {
  /** Present when there are no errors (warnings may remain), with the domain compiled from it. */
  config?: Config;
  domain?: Domain;
  issues: ConfigIssue[];
}

const CLASS_BY_LOWERCASE = new Map(CONFIG_CLASSES.map((c) => [c.toLowerCase(), c]));

/** The component types of each typed class, in the catalog's order. */
export function typesOf(catalog: ComponentCatalog): Record<TypedClass, string[]> {
  return { app: [...catalog.apps.keys()], source: [...catalog.sources.keys()], destination: [...catalog.destinations.keys()] };
}

function optionsSchemaOf(catalog: ComponentCatalog, cls: ConfigClass, type: unknown): OptionsSchema | undefined {
  if (typeof type !== "string") return undefined;
  switch (cls) {
    case "app":
      return catalog.apps.get(type)?.options;
    case "source":
      return catalog.sources.get(type)?.options;
    case "destination":
      return catalog.destinations.get(type)?.options;
    default:
      return undefined;
  }
}

/** 1. Class, id and shape of every object, its options by its type's schema. */
function checkShapes(v: Validation, objects: readonly RawObject[]): void {
  const schemas = classSchemas(typesOf(v.catalog));
  for (const raw of objects) {
    const id = typeof raw.value.id === "string" && raw.value.id !== "" ? raw.value.id : `#${raw.index}`;
    const rawClass = raw.value.class;
    const cls = typeof rawClass === "string" ? CLASS_BY_LOWERCASE.get(rawClass.toLowerCase()) : undefined;
    if (typeof rawClass !== "string") {
      v.report({ raw, id }, "class", `is required (one of ${CONFIG_CLASSES.join(", ")})`);
      continue;
    }
    if (!cls) {
      v.report({ raw, id, cls: rawClass.toLowerCase() }, "class", `unknown class "${rawClass}" (expected one of ${CONFIG_CLASSES.join(", ")})`);
      continue;
    }
    const entry: Entry = { cls, id, raw };
    const shape = checkShape(schemas[cls], raw.value);
    for (const p of shape.problems) v.report(entry, p.path, p.message);
    let valid = shape.problems.length === 0;
    const optionsSchema = (TYPED_CLASSES as readonly string[]).includes(cls) ? optionsSchemaOf(v.catalog, cls, raw.value.type) : undefined;
    if (optionsSchema) {
      const options = checkShape(optionsSchema, raw.value.options ?? {});
      for (const p of options.problems) v.report(entry, ["options", ...p.path], p.message);
      valid &&= options.problems.length === 0;
      if (valid) (shape.value as Record<string, unknown>).options = options.value;
    }
    if (valid) entry.value = shape.value as Record<string, unknown>;
    v.add(entry);
  }
}

export function validateObjects(objects: readonly RawObject[], catalog: ComponentCatalog, extraIssues: readonly ConfigIssue[] = []): ValidationResult {
  const v = new Validation(catalog, CONFIG_CLASSES, extraIssues);
  checkShapes(v, objects);
  checkApps(v);
  checkSources(v);
  const primaryKeys = checkModels(v);
  checkProperties(v, primaryKeys);
  checkPartitions(v, primaryKeys);
  checkGroups(v);
  checkDestinations(v);
  checkSchedules(v);
  checkApiKeys(v);

  const issues = v.sorted(objects);
  if (issues.some((i) => i.severity === "error")) return { issues };
  const located = <T>(cls: ConfigClass) => v.entries.filter((e) => e.cls === cls).map((e) => v.located<T>(e));
  const config: Config = {
    apps: located<AppConfig>("app"),
    models: located<ModelConfig>("model"),
    sources: located<SourceConfig>("source"),
    properties: located<PropertyConfig>("property"),
    groups: located<GroupConfig>("group"),
    destinations: located<DestinationConfig>("destination"),
    schedules: located<ScheduleConfig>("schedule"),
    apiKeys: located<ApiKeyConfig>("apiKey"),
    primaryKeys,
  };
  return { issues, config, domain: compileDomain(config) };
}
