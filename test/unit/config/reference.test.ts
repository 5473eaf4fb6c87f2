// The README's config reference and the published JSON Schema are generated from the schema; this
// fails when either was not regenerated (npm run docs) after a schema change.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { configJsonSchema, generatedFiles } from "../../../daemon/config/reference.js";
import { readPackageInfo } from "../../../daemon/package-info.js";

describe("generated config reference", () => {
  const root = dirname(readPackageInfo().path);

  it.each(generatedFiles(root).map((f) => [f.path.slice(root.length + 1), f] as const))("%s is current (run npm run docs)", (_name, file) => {
    expect(file.current).toBe(file.wanted);
  });

  it("publishes a definition per class with per-type options", () => {
    const schema = configJsonSchema() as { definitions: Record<string, { allOf?: unknown[] }> };
    expect(Object.keys(schema.definitions)).toEqual(["app", "model", "source", "property", "group", "destination", "schedule", "apiKey", "reservedName"]);
    expect(schema.definitions.app?.allOf).toHaveLength(4);
    expect(schema.definitions.source?.allOf).toHaveLength(4);
    expect(schema.definitions.destination?.allOf).toHaveLength(4);
  });

  it("flags in an editor the reserved names the config refuses, as ids and as keys of maps", () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(configJsonSchema());
    const dir = join(root, "examples", "users-purchases");
    const example = readdirSync(dir)
      .filter((f) => f.endsWith(".yml"))
      .flatMap((f) => parse(readFileSync(join(dir, f), "utf8")) as Record<string, unknown>[])
      // The apps' options hold ${VAR} references where the schema wants the values they become.
      .filter((o) => o.class !== "app");
    expect(example.length).toBeGreaterThan(10);
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true);
    const group = { class: "group", id: "vips", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: true }] };
    const destination = example.find((o) => o.class === "destination" && o.mapping !== undefined) as Record<string, unknown> & { mapping: Record<string, string> };
    const cases: [string, unknown, boolean][] = [
      ["a group", group, true],
      ["a group with the id constructor", { ...group, id: "constructor" }, false],
      ["a group with the id toString", { ...group, id: "toString" }, false],
      ["a group with the id Constructor", { ...group, id: "Constructor" }, true],
      ["a destination with a mapping key hasOwnProperty", { ...destination, mapping: { ...destination.mapping, hasOwnProperty: "email" } }, false],
      ["a destination with a mapping key valueOf_", { ...destination, mapping: { ...destination.mapping, valueOf_: "email" } }, true],
    ];
    for (const [what, object, valid] of cases) expect(validate(object), what).toBe(valid);
  });
});
