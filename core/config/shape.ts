// The shape of one object or options block: TypeBox schemas are checked with their defaults applied and
// their errors put in words a user can act on; plain JSON Schemas (a plugin need not use TypeBox) are
// checked with Ajv.
import { Kind, type TSchema } from "@sinclair/typebox";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { Value } from "@sinclair/typebox/value";
import { Ajv } from "ajv";
import type { FieldPath } from "./issues.js";
import type { OptionsSchema } from "./types.js";

export interface ShapeResult {
  /** The value with defaults applied (when it has no problems). */
  value: unknown;
  problems: { path: FieldPath; message: string }[];
}

function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function literalChoices(schema: TSchema): string[] | undefined {
  const anyOf = (schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (!anyOf || !anyOf.every((s) => typeof s.const === "string")) return undefined;
  return anyOf.map((s) => String(s.const));
}

function describeError(error: ValueError): string {
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return "is required";
    case ValueErrorType.ObjectAdditionalProperties:
      return "is not a known field";
    case ValueErrorType.Union: {
      const choices = literalChoices(error.schema);
      return choices ? `must be one of ${choices.join(", ")} (got ${JSON.stringify(error.value)})` : error.message;
    }
    case ValueErrorType.String:
      return `must be a string (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.Integer:
      return `must be an integer (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.Boolean:
      return `must be true or false (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.Object:
      return "must be an object";
    case ValueErrorType.Array:
      return "must be a list";
    case ValueErrorType.StringPattern:
      return error.path === "/id"
        ? `may contain only letters, digits and _ . : - (got ${JSON.stringify(error.value)})`
        : `does not match ${(error.schema as { pattern?: string }).pattern} (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.StringMinLength: {
      const min = (error.schema as { minLength?: number }).minLength ?? 1;
      return min <= 1 ? "must not be empty" : `must be at least ${min} characters long`;
    }
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `must be at least ${(error.schema as { minimum?: number }).minimum} (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `must be at most ${(error.schema as { maximum?: number }).maximum} (got ${JSON.stringify(error.value)})`;
    case ValueErrorType.ArrayMinItems:
      return "must not be empty";
    default:
      return error.message;
  }
}

function checkTypeBox(schema: TSchema, value: unknown): ShapeResult {
  const converted = Value.Convert(schema, Value.Clone(value));
  const problems: ShapeResult["problems"] = [];
  const seen = new Set<string>();
  for (const error of Value.Errors(schema, converted)) {
    // A failing union reports its branches too; the first error per field is the useful one.
    if ([...seen].some((p) => error.path.startsWith(`${p}/`) || error.path === p)) continue;
    seen.add(error.path);
    problems.push({ path: pointerToPath(error.path), message: describeError(error) });
  }
  return { value: problems.length === 0 ? Value.Default(schema, converted) : converted, problems };
}

const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
const compiled = new WeakMap<object, ReturnType<typeof ajv.compile>>();

function checkJsonSchema(schema: Readonly<Record<string, unknown>>, value: unknown): ShapeResult {
  const copy = structuredClone(value);
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (validate(copy)) return { value: copy, problems: [] };
  const problems = (validate.errors ?? []).map((error) => {
    const path = pointerToPath(error.instancePath);
    if (error.keyword === "required") return { path: [...path, String(error.params.missingProperty)], message: "is required" };
    if (error.keyword === "additionalProperties") return { path: [...path, String(error.params.additionalProperty)], message: "is not a known field" };
    return { path, message: error.message ?? "is invalid" };
  });
  return { value: copy, problems };
}

/** Checks a value against a schema; returns it with defaults applied, and the problems found. */
export function checkShape(schema: OptionsSchema, value: unknown): ShapeResult {
  return Kind in schema ? checkTypeBox(schema as TSchema, value) : checkJsonSchema(schema, value);
}
