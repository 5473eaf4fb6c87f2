// deploy/systemd/grouparoo-stream.service: `systemd-analyze verify` accepts it with no message at
// all (in a temporary root holding systemd's own units, a stub at the ExecStart path and the host's
// /bin/kill, since this check runs without systemd as PID 1), and rejects a broken copy; its
// security exposure stays "OK"; the required directives hold; and its ExecStartPre and ExecStart
// command lines, run against the real CLI, validate the example (exit 0) and exit 78 on a bad config,
// the status RestartPreventExitStatus names.
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runTool } from "../../helpers/tools.js";

const root = new URL("../../..", import.meta.url).pathname;
const UNIT = join(root, "deploy/systemd/grouparoo-stream.service");
const ENV_EXAMPLE = join(root, "deploy/systemd/env.example");
const CLI_PATH = "/usr/local/bin/grouparoo-stream";
const text = readFileSync(UNIT, "utf8");

/** The unit's settings, section by section, in order (a key may repeat). */
function parseUnit(source: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of source.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = [];
      sections.set(header[1] as string, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 0) throw new Error(`not a setting: ${line}`);
    current.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return sections;
}
const unit = parseUnit(text);
const values = (section: string, key: string) => (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
const value = (section: string, key: string) => {
  const all = values(section, key);
  expect(all, `${section}.${key} is set once`).toHaveLength(1);
  return all[0] as string;
};

/** A filesystem root for `systemd-analyze verify --root`: systemd's units, the unit, its commands. */
function verifyRoot(unitText: string): string {
  const dir = mkdtempSync(join(tmpdir(), "unit-root-"));
  const systemUnits = ["/usr/lib/systemd/system", "/lib/systemd/system"].find((d) => existsSync(join(d, "sysinit.target")));
  if (!systemUnits) throw new Error("systemd's units (sysinit.target) are not installed: apt-get install systemd");
  cpSync(systemUnits, join(dir, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(dir, "etc/systemd/system"), { recursive: true });
  writeFileSync(join(dir, "etc/systemd/system/grouparoo-stream.service"), unitText);
  for (const command of parseUnit(unitText).get("Service")?.filter(([k]) => k.startsWith("Exec")) ?? []) {
    const path = command[1].replace(/^[-@:+!]+/, "").split(/\s+/)[0] as string;
    mkdirSync(join(dir, dirname(path)), { recursive: true });
    if (path === CLI_PATH) writeFileSync(join(dir, path), "#!/bin/sh\nexit 0\n");
    else copyFileSync(path, join(dir, path)); // a command the host lacks fails here
    chmodSync(join(dir, path), 0o755);
  }
  return dir;
}

describe("deploy/systemd/grouparoo-stream.service", () => {
  const roots: string[] = [];
  const work = mkdtempSync(join(tmpdir(), "unit-run-"));
  afterAll(() => {
    for (const dir of [...roots, work]) rmSync(dir, { recursive: true, force: true });
  });
  const verify = (unitText: string) => {
    const dir = verifyRoot(unitText);
    roots.push(dir);
    return runTool("systemd-analyze", ["verify", `--root=${dir}`, "grouparoo-stream.service"], "apt-get install systemd (bash .ci/run does)");
  };

  it("passes systemd-analyze verify without a single message", () => {
    expect(verify(text)).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("is rejected by systemd-analyze verify when broken (the check can fail)", () => {
    const broken = verify(text.replace("Restart=on-failure", "Restart=sometimes"));
    expect(broken.stderr).toContain("Failed to parse service restart specifier, ignoring: sometimes");
    const missing = verifyRoot(text);
    roots.push(missing);
    rmSync(join(missing, CLI_PATH));
    const result = runTool("systemd-analyze", ["verify", `--root=${missing}`, "grouparoo-stream.service"], "apt-get install systemd (bash .ci/run does)");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Command ${CLI_PATH} is not executable: No such file or directory`);
  });

  it("keeps systemd-analyze security's exposure at 2.0 or below (OK)", () => {
    const dir = verifyRoot(text);
    roots.push(dir);
    const result = runTool("systemd-analyze", ["security", "--offline=true", `--root=${dir}`, "grouparoo-stream.service"], "apt-get install systemd (bash .ci/run does)");
    const exposure = /Overall exposure level for grouparoo-stream\.service: (\d+\.\d+) (\w+)/.exec(result.stdout);
    expect(exposure, result.stdout + result.stderr).not.toBeNull();
    expect(Number(exposure?.[1])).toBeLessThanOrEqual(2.0);
    expect(exposure?.[2]).toBe("OK");
  });

  it("has the required directives", () => {
    expect(value("Service", "Type")).toBe("notify");
    expect(value("Service", "ExecStartPre")).toBe(`${CLI_PATH} validate --config /etc/grouparoo-stream $GROUPAROO_PLUGINS`);
    expect(value("Service", "ExecStart")).toBe(`${CLI_PATH} run --config /etc/grouparoo-stream --state \${STATE_DIRECTORY} --http \${GROUPAROO_HTTP} $GROUPAROO_PLUGINS $GROUPAROO_RUN_OPTIONS`);
    expect(value("Service", "ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(value("Service", "StateDirectory")).toBe("grouparoo-stream");
    expect(value("Service", "DynamicUser")).toBe("yes");
    expect(value("Service", "NoNewPrivileges")).toBe("yes");
    expect(value("Service", "ProtectSystem")).toBe("strict");
    expect(value("Service", "ProtectHome")).toBe("yes");
    expect(value("Service", "PrivateTmp")).toBe("yes");
    expect(value("Service", "RestrictAddressFamilies")).toBe("AF_UNIX AF_INET AF_INET6");
    expect(values("Service", "SystemCallFilter")).toEqual(["@system-service", "~@privileged"]);
    expect(value("Service", "CapabilityBoundingSet")).toBe("");
    expect(value("Service", "Restart")).toBe("on-failure");
    expect(value("Service", "RestartPreventExitStatus")).toBe("64 65 73 78");
    expect(value("Service", "WatchdogSec")).toBe("30s");
    expect(value("Service", "EnvironmentFile")).toBe("-/etc/grouparoo-stream/env");
    expect(Number(value("Service", "LimitNOFILE"))).toBeGreaterThanOrEqual(65536);
    expect(values("Service", "MemoryDenyWriteExecute")).toEqual([]); // V8's JIT
    // TimeoutStopSec covers the drain: at least three times the default --drain-timeout-ms.
    const drainMs = Number(/"--drain-timeout-ms <ms>".*?,\s*([\d_]+)\)/.exec(readFileSync(join(root, "daemon/flags.ts"), "utf8"))?.[1]?.replace(/_/g, ""));
    expect(drainMs).toBe(10_000);
    const stop = /^(\d+)s$/.exec(value("Service", "TimeoutStopSec"));
    expect(Number(stop?.[1]) * 1000).toBeGreaterThanOrEqual(3 * drainMs);
  });

  describe("its command lines, run against the real CLI", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "fatal", STATE_DIRECTORY: join(work, "state") };
    for (const setting of values("Service", "Environment")) {
      const [name, ...rest] = setting.split("=");
      env[name as string] = rest.join("=");
    }
    for (const line of readFileSync(ENV_EXAMPLE, "utf8").split("\n")) {
      const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
      if (match) env[match[1] as string] = match[2];
    }
    env.GROUPAROO_HTTP = "127.0.0.1:0";
    const config = join(work, "etc");
    /** systemd's expansion: ${VAR} is one argument, $VAR splits at whitespace. */
    const argv = (command: string) =>
      command
        .replaceAll("/etc/grouparoo-stream", config)
        .split(/\s+/)
        .flatMap((word) => {
          const braced = /^\$\{(\w+)\}$/.exec(word);
          if (braced) return [env[braced[1] as string] ?? ""];
          const bare = /^\$(\w+)$/.exec(word);
          if (bare) return (env[bare[1] as string] ?? "").split(/\s+/).filter((w) => w !== "");
          return [word];
        });
    const exec = (command: string) => {
      const [program, ...args] = argv(command);
      expect(program).toBe(CLI_PATH);
      const result = spawnSync(process.execPath, ["--import", "tsx", join(root, "daemon/cli.ts"), ...args], { env, encoding: "utf8", timeout: 60_000 });
      return { code: result.status, output: result.stdout + result.stderr };
    };

    it("ExecStartPre validates the example config (exit 0) with the env file's variables", () => {
      cpSync(join(root, "examples/users-purchases"), config, { recursive: true });
      copyFileSync(ENV_EXAMPLE, join(config, "env")); // the env file beside the config is not read as config
      chmodSync(join(config, "env"), 0o600);
      const result = exec(value("Service", "ExecStartPre"));
      expect(result.output).toBe(`${config}: valid config: 2 apps, 1 model, 2 sources, 8 properties, 2 groups, 1 destination\n`);
      expect(result.code).toBe(0);
    });

    it("ExecStartPre validates a config of a plugin's types with the plugins of GROUPAROO_PLUGINS, and refuses it without them", () => {
      const plugged = join(work, "plugged");
      mkdirSync(plugged);
      writeFileSync(join(plugged, "spool.yml"), `- { class: app, id: spool, type: spool, options: { directory: "${join(work, "spool")}" } }\n`);
      const pre = value("Service", "ExecStartPre").replace("/etc/grouparoo-stream", plugged);
      const without = exec(pre);
      expect(without.code).toBe(78);
      expect(without.output).toContain('app "spool": type: must be one of postgres, kafka, webhook, file (got "spool")');
      env.GROUPAROO_PLUGINS = `--plugin ${join(root, "examples/plugin-spool")}`;
      try {
        const result = exec(pre);
        expect(result.output).toContain(`${plugged}: valid config: 1 app\n`);
        expect(result.code).toBe(0);
        // The daemon gets the same plugins, before the run options.
        expect(argv(value("Service", "ExecStart"))).toEqual(expect.arrayContaining(["--plugin", join(root, "examples/plugin-spool")]));
      } finally {
        env.GROUPAROO_PLUGINS = "";
      }
    });

    it("ExecStartPre and ExecStart exit 78 on a bad config, which RestartPreventExitStatus names", () => {
      writeFileSync(join(config, "zz-broken.yml"), "- class: group\n  id: broken\n  modelId: nobody\n  rules: []\n");
      const pre = exec(value("Service", "ExecStartPre"));
      expect(pre.output).toContain('group "broken"');
      expect(pre.code).toBe(78);
      const start = exec(value("Service", "ExecStart"));
      expect(start.code).toBe(78);
      expect(start.output).toContain("invalid config; not starting");
      expect(existsSync(join(work, "state"))).toBe(false);
    });
  });
});
