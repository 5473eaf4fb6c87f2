// Reading config files and directories: formats, nesting, environment variables, and the errors
// for files that cannot be read.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { interpolate, readConfig } from "../../../daemon/config/load.js";
import { loadConfig } from "../../../daemon/config/validate.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-load-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  return path;
};
const errors = (path: string, env: Record<string, string> = {}) =>
  loadConfig(path, undefined, env)
    .issues.filter((i) => i.severity === "error")
    .map((i) => ({ file: i.file, id: i.id, field: i.field, message: i.message }));

describe("readConfig", () => {
  it("reads a directory recursively in name order, YAML and JSON, single objects and lists", () => {
    write("b/models.yaml", "- class: model\n  id: users\n- class: model\n  id: accounts\n");
    write("a.json", JSON.stringify({ class: "app", id: "pg", type: "postgres", options: { database: "shop" } }));
    write("b/ignored.txt", "class: model\nid: nope\n");
    write(".hidden/x.yml", "class: model\nid: hidden\n");
    const { objects, issues } = readConfig(dir, {});
    expect(issues).toEqual([]);
    expect(objects.map((o) => [o.file.endsWith("a.json") ? "a.json" : "b/models.yaml", o.index, o.value.id])).toEqual([
      ["a.json", 0, "pg"],
      ["b/models.yaml", 0, "users"],
      ["b/models.yaml", 1, "accounts"],
    ]);
  });

  it("replaces ${VAR} and ${VAR:-default}, and names an unset variable with its field", () => {
    const path = write("app.yml", "class: app\nid: pg\ntype: postgres\noptions:\n  host: ${PGHOST:-localhost}\n  database: ${PGDATABASE}\n  password: ${PGPASSWORD}\n");
    const { objects, issues } = readConfig(path, { PGDATABASE: "shop" });
    expect(objects[0]?.value.options).toEqual({ host: "localhost", database: "shop", password: "" });
    expect(issues).toEqual([
      {
        severity: "error",
        file: path,
        objectClass: "app",
        id: "pg",
        field: "options.password",
        message: "environment variable PGPASSWORD is not set (use ${PGPASSWORD:-default} for a default)",
      },
    ]);
  });

  it("names an API key's unset variable without suggesting a default, with the class as written", () => {
    const path = write("keys.yml", "class: apiKey\nid: ops\nname: ops\ntype: full\napiKey: ${OPS_API_KEY}\n");
    const { issues } = readConfig(path, {});
    expect(issues).toEqual([
      {
        severity: "error",
        file: path,
        objectClass: "apiKey",
        id: "ops",
        field: "apiKey",
        message: "environment variable OPS_API_KEY is not set: set it in the daemon's environment (an API key's secret comes only from there)",
      },
    ]);
  });

  it("says of a field whose variable is not set only that, not what its empty stand-in breaks", () => {
    // Each field below also failed its schema on the "" put in the variable's place: "must be at least
    // 16 characters long", "must not be empty", "does not match ^[a-z_]...": three errors that were
    // not there to fix. A value that is set and wrong is still named.
    const path = write(
      "config.yml",
      [
        "- { class: app, id: pg, type: postgres, options: { database: shop, slot: '${SLOT}' } }",
        "- { class: model, id: users }",
        "- { class: source, id: users_table, type: postgres-cdc, appId: pg, modelId: users, options: { table: '${TABLE}' }, mapping: { id: user_id } }",
        "- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }",
        "- { class: ApiKey, id: ops, apiKey: '${OPS_API_KEY}' }",
        "- { class: apiKey, id: short, apiKey: '${SHORT_API_KEY}' }",
      ].join("\n"),
    );
    const { issues, config } = loadConfig(path, undefined, { SHORT_API_KEY: "too-short" });
    expect(config).toBeUndefined();
    expect(issues.map((i) => `${i.objectClass} ${i.id} ${i.field}: ${i.message}`)).toEqual([
      "app pg options.slot: environment variable SLOT is not set (use ${SLOT:-default} for a default)",
      "source users_table options.table: environment variable TABLE is not set (use ${TABLE:-default} for a default)",
      "ApiKey ops apiKey: environment variable OPS_API_KEY is not set: set it in the daemon's environment (an API key's secret comes only from there)",
      "apiKey short apiKey: must be at least 16 characters long",
    ]);
  });

  it("keeps a key named __proto__ as a key, so that the validation refuses it by name", () => {
    const path = write("model.yml", "class: model\nid: users\n__proto__: { polluted: true }\n");
    const { objects, issues } = readConfig(path, {});
    expect(issues).toEqual([]);
    expect(Object.hasOwn(objects[0]?.value ?? {}, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(errors(path)[0]).toEqual({ file: path, id: "users", field: "__proto__", message: '"__proto__" is reserved: every JavaScript object has a member of that name, and the daemon keeps objects keyed by it; choose another name' });
  });

  it("uses the default when the variable is set but empty, like the shell", () => {
    expect(interpolate("${A:-x}-${B}", { A: "", B: "" }, () => undefined)).toBe("x-");
  });

  it("converts an interpolated number for an integer field", () => {
    const path = write("app.yml", "class: app\nid: pg\ntype: postgres\noptions: { host: db, port: '${PGPORT}', database: shop }\n");
    const result = loadConfig(path, undefined, { PGPORT: "6543" });
    expect(result.issues.filter((i) => i.severity === "error")).toEqual([]);
    expect(result.config?.apps[0]?.options).toMatchObject({ port: 6543 });
  });

  it("accepts class names in any case", () => {
    const path = write("m.yml", "- { class: MODEL, id: users }\n- { class: ApiKey, id: k, apiKey: '${K}' }\n");
    const { objects } = readConfig(path, {});
    expect(objects.map((o) => o.value.class)).toEqual(["MODEL", "ApiKey"]);
    expect(errors(path, { K: "0123456789abcdef" })).toEqual([{ file: path, id: "users", field: "(model)", message: "has no primary key: no source maps a column to a unique property of its own" }]);
  });

  it("reports YAML syntax errors with line and column", () => {
    const path = write("broken.yml", "- class: model\n  id: users\n   name: x\n");
    expect(errors(path)).toEqual([{ file: path, id: "(file)", field: "(file)", message: "not valid YAML at line 2, column 7: Nested mappings are not allowed in compact mappings" }]);
  });

  it("reports duplicate YAML keys", () => {
    const path = write("dup.yml", "class: model\nid: users\nid: accounts\n");
    expect(errors(path)).toEqual([{ file: path, id: "(file)", field: "(file)", message: "not valid YAML at line 3, column 1: Map keys must be unique" }]);
  });

  it("reports JSON syntax errors", () => {
    const path = write("broken.json", '{"class": "model", "id": }');
    expect(errors(path)).toEqual([{ file: path, id: "(file)", field: "(file)", message: expect.stringMatching(/^not valid JSON: Unexpected token/) as unknown as string }]);
  });

  it("reports a key a JSON object repeats, with its line and column, as a YAML file's (JSON.parse kept the last value and dropped the others)", () => {
    const text = '[\n  {"class": "model", "id": "users"},\n  {"class": "source", "id": "users_table", "mapping": {"id": "user_id", "id": "account_id"}}\n]\n';
    const path = write("dup.json", text);
    expect(errors(path)).toEqual([{ file: path, id: "(file)", field: "(file)", message: 'not valid JSON at line 3, column 73: the key "id" is repeated in its object (keys must be unique)' }]);
    // The same key in different objects, a key's text as a value, escaped quotes: no repeat.
    const fine = write("fine.json", JSON.stringify([{ class: "model", id: "a" }, { class: "model", id: "b", name: 'say "id", "id"', options: { id: "x" } }], null, 2));
    expect(readConfig(fine).issues).toEqual([]);
    expect(readConfig(fine).objects.length).toBe(2);
    const escaped = write("escaped.json", '{"class": "model", "id": "a", "name": "a\\"", "na\\"me": "b", "na\\"me": "c"}');
    expect(errors(escaped)).toEqual([{ file: escaped, id: "(file)", field: "(file)", message: 'not valid JSON at line 1, column 61: the key "na\\"me" is repeated in its object (keys must be unique)' }]);
  });

  it("reports where a JSON syntax error is when the parser gives its position", () => {
    const path = write("broken2.json", '[\n  {"class": "model",\n   "id": "users"\n   "name": "x"}\n]\n');
    expect(errors(path)).toEqual([{ file: path, id: "(file)", field: "(file)", message: "not valid JSON at line 4, column 4: Expected ',' or '}' after property value" }]);
  });

  it("reports a list item that is not an object", () => {
    const path = write("items.yml", "- class: model\n  id: users\n- just a string\n");
    expect(errors(path)).toContainEqual({ file: path, id: "#1", field: "(file)", message: "item 1 is not an object with class and id" });
  });

  it("reports a missing path and an empty directory", () => {
    expect(errors(join(dir, "nope.yml"))).toEqual([{ file: join(dir, "nope.yml"), id: "(none)", field: "(file)", message: "no such file or directory" }]);
    mkdirSync(join(dir, "empty"));
    expect(errors(join(dir, "empty"))).toEqual([{ file: join(dir, "empty"), id: "(none)", field: "(file)", message: "no .yml, .yaml or .json config files found" }]);
  });

  it("follows symbolic links: a Kubernetes ConfigMap volume's files, a linked file and directory, each directory once", () => {
    // A ConfigMap volume: every file a link through ..data to a hidden directory of the current version.
    const volume = join(dir, "volume");
    write("volume/..2026_12_03_08_00_00.1/app.yml", "class: app\nid: pg\ntype: postgres\noptions: { database: shop }\n");
    write("volume/..2026_12_03_08_00_00.1/models.yml", "- { class: model, id: users }\n");
    symlinkSync("..2026_12_03_08_00_00.1", join(volume, "..data"));
    symlinkSync("..data/app.yml", join(volume, "app.yml"));
    symlinkSync("..data/models.yml", join(volume, "models.yml"));
    // A file and a directory linked from elsewhere, and a link back to the directory itself.
    write("shared/accounts.json", JSON.stringify({ class: "model", id: "accounts" }));
    write("more/orders.yml", "class: model\nid: orders\n");
    symlinkSync(join(dir, "shared/accounts.json"), join(volume, "accounts.json"));
    symlinkSync(join(dir, "more"), join(volume, "more"));
    symlinkSync(".", join(volume, "again"));
    const { objects, issues } = readConfig(volume, {});
    expect(issues).toEqual([]);
    expect(objects.map((o) => o.value.id)).toEqual(["accounts", "pg", "users", "orders"]);
  });

  it("names a link to nothing with a config file's name, and skips one with another name", () => {
    write("config/app.yml", "class: app\nid: pg\ntype: postgres\noptions: { database: shop }\n");
    symlinkSync(join(dir, "gone.yml"), join(dir, "config/models.yml"));
    symlinkSync(join(dir, "gone.txt"), join(dir, "config/notes.txt"));
    expect(readConfig(join(dir, "config"), {}).issues.map((i) => ({ file: i.file, message: i.message }))).toEqual([
      { file: join(dir, "config/models.yml"), message: "cannot be read: no such file (a symbolic link to nothing?)" },
    ]);
  });
});
