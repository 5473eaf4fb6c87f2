// An API key's secret comes from the environment: a whole-value `${VAR}` reference is noted as such
// when the files are read; a literal, a reference with a default, or one embedded in text is not.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { environmentFields, readConfig } from "../../../daemon/config/load.js";
import { loadConfig } from "../../../daemon/config/validate.js";

const dir = mkdtempSync(join(tmpdir(), "api-key-secrets-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("API key secrets", () => {
  it("notes the fields whose whole value is one ${VAR} reference", () => {
    expect(environmentFields({ apiKey: "${KEY}", a: "x${KEY}", b: "${KEY:-fallback-fallback}", options: { password: "${PW}" }, list: ["${L}"] })).toEqual(["apiKey", "options.password", "list[0]"]);
  });

  it("reads a key from the environment and refuses one written in the file", () => {
    const file = join(dir, "keys.yml");
    writeFileSync(
      file,
      [
        "- { class: apiKey, id: from_env, apiKey: '${OPS_KEY}' }",
        "- { class: apiKey, id: literal, apiKey: 'abcdefghijklmnopqrstuvwxyz' }",
        "- { class: apiKey, id: embedded, apiKey: 'prefix-${OPS_KEY}' }",
        "",
      ].join("\n"),
    );
    const { objects } = readConfig(file, { OPS_KEY: "0123456789abcdef0123" });
    expect(objects.map((o) => o.fromEnvironment ?? [])).toEqual([["apiKey"], [], []]);
    const issues = loadConfig(file, undefined, { OPS_KEY: "0123456789abcdef0123" }).issues.filter((i) => i.objectClass === "apiKey");
    expect(issues.map((i) => `${i.id}: ${i.field}: ${i.message}`)).toEqual([
      "literal: apiKey: must be a ${VAR} reference to an environment variable (a literal key in a config file is refused: anyone who reads the file could use it)",
      "embedded: apiKey: must be a ${VAR} reference to an environment variable (a literal key in a config file is refused: anyone who reads the file could use it)",
    ]);
    // The message never carries the secret itself.
    expect(JSON.stringify(issues)).not.toContain("0123456789abcdef0123");
    expect(JSON.stringify(issues)).not.toContain("abcdefghijklmnopqrstuvwxyz");
  });
});
