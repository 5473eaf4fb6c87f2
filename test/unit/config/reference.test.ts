// The README's config reference and the published JSON Schema are generated from the schema; this
// fails when either was not regenerated (npm run docs) after a schema change.
import { dirname } from "node:path";
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
    expect(Object.keys(schema.definitions)).toEqual(["app", "model", "source", "property", "group", "destination", "schedule", "apiKey"]);
    expect(schema.definitions.app?.allOf).toHaveLength(4);
    expect(schema.definitions.source?.allOf).toHaveLength(4);
    expect(schema.definitions.destination?.allOf).toHaveLength(4);
  });
});
