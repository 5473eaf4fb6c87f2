// The Node flags the daemon runs with (daemon/node-flags.ts), in every place that starts it: the
// launcher's first line (daemon/cli.ts, through `env -S`), the container's entrypoint
// (containerfile.test.ts), `npm run bench:scale` and README's Operations table; and this Node accepts
// each of them (a flag V8 dropped would stop every start).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { NODE_FLAGS } from "../../../daemon/node-flags.js";

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), "utf8");

describe("the launcher's Node flags", () => {
  it("are the first line of daemon/cli.ts, through env -S", () => {
    expect(read("daemon/cli.ts").split("\n")[0]).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(" ")}`);
  });

  it("are the ones README's Operations table names", () => {
    const row = read("README.md").split("\n").find((line) => line.startsWith("| Node flags |")) ?? "";
    expect(row).toContain(`the \`grouparoo-stream\` launcher runs Node with \`${NODE_FLAGS.join(" ")}\``);
  });

  it("start the in-process scale benchmark too", () => {
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    expect(scripts["bench:scale"]).toBe(`npm run build && node ${NODE_FLAGS.join(" ")} --import tsx bench/scale.ts`);
  });

  it("are accepted by this Node, the young generation allowed to grow past Node's default", () => {
    const available = (flags: readonly string[]) => {
      const probe = spawnSync(process.execPath, [...flags, "-e", "process.stdout.write(String(require('v8').getHeapStatistics().total_available_size))"], { encoding: "utf8" });
      expect(probe.stderr).toBe("");
      expect(probe.status).toBe(0);
      return Number(probe.stdout);
    };
    // Two 32 MiB semi-spaces where Node's default allows two of 16: 32 MiB more may be allocated.
    expect(available(NODE_FLAGS) - available([])).toBeGreaterThanOrEqual(32 * 2 ** 20);
  });
});
