// `grouparoo-stream validate` as an SRE runs it: exit 0 on the shipped example, 78 with every error.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const example = new URL("../../examples/users-purchases", import.meta.url).pathname;

describe("grouparoo-stream validate", () => {
  const work = mkdtempSync(join(tmpdir(), "validate-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("accepts the users + purchases example", async () => {
    const result = await runCli(["validate", "--config", example]);
    expect(result).toEqual({
      code: 0,
      stdout: `${example}: valid config: 2 apps, 1 model, 2 sources, 8 properties, 2 groups, 1 destination\n`,
      stderr: "",
    });
  });

  it("exits 78 naming the file, object, field and problem of every error", async () => {
    const dir = join(work, "broken");
    cpSync(example, dir, { recursive: true });
    const users = join(dir, "users.yml");
    writeFileSync(users, readFileSync(users, "utf8").replace("unique: true     #", "unique: true\n  isArray: true   #"));
    const groups = join(dir, "groups.yml");
    writeFileSync(groups, readFileSync(groups, "utf8").replace("{ propertyId: email, op: exists }", "{ propertyId: first_name, op: gt, match: a }"));
    const result = await runCli(["validate", "--config", dir]);
    expect(result.code).toBe(78);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      [
        `error: ${groups}: group "high_value": rules[1].op: gt is not valid for a property of type string (valid: exists, notExists, eq, ne, like, notLike, iLike, notILike, startsWith, endsWith, substring)`,
        `error: ${users}: property "email": isArray: a unique property cannot be an array`,
        `${dir}: invalid config: 2 errors`,
        "",
      ].join("\n"),
    );
  });

  it("refuses a date no calendar has in validate and in run alike (exit 78, never a crash at start)", async () => {
    const dir = join(work, "bad-date");
    cpSync(example, dir, { recursive: true });
    const groups = join(dir, "groups.yml");
    writeFileSync(groups, readFileSync(groups, "utf8").replace("{ propertyId: email, op: exists }", '{ propertyId: last_purchase_at, op: gt, match: "2020-02-30" }'));
    const message = `error: ${groups}: group "high_value": rules[1].match: "2020-02-30" is not an ISO-8601 date or epoch milliseconds`;
    const validated = await runCli(["validate", "--config", dir]);
    expect(validated.code).toBe(78);
    expect(validated.stderr.split("\n")[0]).toBe(message);
    const run = await runCli(["run", "--config", dir, "--state", join(work, "bad-date-state"), "--http", "127.0.0.1:0"]);
    expect(run.code).toBe(78);
    expect(run.stdout).toContain('rules[1].match: \\"2020-02-30\\" is not an ISO-8601 date or epoch milliseconds');
  });

  it("prints the issues as JSON with --json", async () => {
    const result = await runCli(["validate", "--config", join(work, "missing.yml"), "--json"]);
    expect(result.code).toBe(78);
    expect(JSON.parse(result.stdout)).toEqual({
      valid: false,
      issues: [{ severity: "error", file: join(work, "missing.yml"), objectClass: "", id: "(none)", field: "(file)", message: "no such file or directory" }],
    });
  });

  it("requires --config and says so", async () => {
    const result = await runCli(["validate"]);
    expect(result.code).toBe(64);
    expect(result.stderr.split("\n")[0]).toBe("error: required option '-c, --config <path>' not specified");
  });
});
