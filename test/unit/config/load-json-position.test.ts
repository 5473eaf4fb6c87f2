// Where a JSON config's syntax error is, for every position V8 gives (README, "Config files").
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readConfig } from "../../../daemon/config/load.js";

describe("readConfig: a JSON syntax error's position", () => {
  const dir = mkdtempSync(join(tmpdir(), "json-position-"));
  const messages = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return readConfig(path).issues.map((i) => i.message);
  };

  it("names the line and column of text left after the JSON value (V8: 'after JSON at position N')", () => {
    expect(messages("trailing.json", '[\n  {"class": "model", "id": "users"}\n]\n]\n')).toEqual(["not valid JSON at line 4, column 1: Unexpected non-whitespace character after the JSON value"]);
  });

  it("names the line and column of an error inside the value, as before", () => {
    expect(messages("inside.json", '[\n  {"class": "model",,\n]\n')).toEqual(["not valid JSON at line 2, column 21: Expected double-quoted property name"]);
  });
});
