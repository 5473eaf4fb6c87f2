// deploy/container/Containerfile, read statically (no container engine runs here; the build steps
// themselves run as a script in test/e2e/container-build.test.ts): a build stage on node:20 bookworm
// that installs, compiles and prunes the devDependencies; a node:20 bookworm-slim final stage that
// takes only the build's output, installs tini and runs under it as a non-root user, with a
// HEALTHCHECK on /healthz through Node's fetch (no curl), the state on a VOLUME, port 9464 exposed and
// bound to 0.0.0.0, the config at /etc/grouparoo-stream; nothing fetched from a URL.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NODE_FLAGS } from "../../../daemon/node-flags.js";
import { all, parseContainerfile, readContainerfile, type Stage } from "../../helpers/containerfile.js";

const root = new URL("../../..", import.meta.url).pathname;
const stages = readContainerfile(join(root, "deploy/container/Containerfile"));
const [build, final] = stages as [Stage, Stage];
const one = (stage: Stage, keyword: string) => {
  const found = all(stage, keyword);
  expect(found, `${keyword} once in ${stage.name ?? stage.image}`).toHaveLength(1);
  return found[0] as NonNullable<(typeof found)[0]>;
};

describe("deploy/container/Containerfile", () => {
  it("parses continuations, comments, flags and exec forms", () => {
    const parsed = parseContainerfile('# c\nFROM a:1 AS b\nRUN x \\\n  # inner\n  && y\nCOPY --from=b --chown=1:1 /p ./q\nHEALTHCHECK --retries=3 CMD ["n", "-e", "1"]\n');
    expect(parsed).toEqual([
      {
        image: "a:1",
        name: "b",
        instructions: [
          { keyword: "RUN", flags: {}, args: "x  && y", line: 3 },
          { keyword: "COPY", flags: { from: "b", chown: "1:1" }, args: "/p ./q", line: 6 },
          { keyword: "HEALTHCHECK", flags: { retries: "3" }, args: 'CMD ["n", "-e", "1"]', exec: ["n", "-e", "1"], line: 7 },
        ],
      },
    ]);
    expect(() => parseContainerfile("RUN x\n")).toThrow("RUN before FROM");
  });

  it("builds in a node:20 bookworm stage and runs from node:20 bookworm-slim", () => {
    expect(stages).toHaveLength(2);
    expect(build.image).toBe("docker.io/library/node:20-bookworm");
    expect(build.name).toBe("build");
    expect(final.image).toBe("docker.io/library/node:20-bookworm-slim");
  });

  it("installs, builds and prunes the devDependencies in the build stage, from the lockfile", () => {
    const runs = all(build, "RUN").map((r) => r.args);
    expect(runs).toEqual(["npm ci --no-audit --no-fund", "npm run build && npm prune --omit=dev --no-audit --no-fund"]);
    const copied = all(build, "COPY").flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    expect(copied.slice(0, 2)).toEqual(["package.json", "package-lock.json"]);
    for (const folder of ["core", "metrics", "state", "connectors", "streams", "daemon", "schema", "tsconfig.json", "tsconfig.build.json"]) expect(copied).toContain(folder);
    for (const source of copied) expect(existsSync(join(root, source)), source).toBe(true);
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8").split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    for (const source of copied) expect(ignored, source).not.toContain(source);
  });

  it("takes only the build's output into the final stage", () => {
    const copies = all(final, "COPY");
    expect(copies.map((c) => [c.flags.from, c.args])).toEqual([
      ["build", "/app/package.json ./package.json"],
      ["build", "/app/node_modules ./node_modules"],
      ["build", "/app/dist ./dist"],
      ["build", "/app/schema ./schema"],
    ]);
    expect(one(final, "WORKDIR").args).toBe("/app");
    expect(all(final, "ADD")).toEqual([]);
  });

  it("runs as a non-root user under tini, the daemon bound to 0.0.0.0:9464 with its state on the volume", () => {
    const user = one(final, "USER");
    expect(user.args).toBe("1000:1000");
    const entrypoint = one(final, "ENTRYPOINT");
    const cmd = one(final, "CMD");
    expect(user.line).toBeLessThan(entrypoint.line);
    expect(entrypoint.exec).toEqual(["/usr/bin/tini", "--", "node", ...NODE_FLAGS, "/app/dist/daemon/cli.js"]);
    expect(final.instructions.find((i) => i.keyword === "RUN" && /apt-get install -y --no-install-recommends tini\b/.test(i.args))?.args).toContain("rm -rf /var/lib/apt/lists/*");
    expect(cmd.exec).toEqual(["run", "--config", "/etc/grouparoo-stream", "--state", "/var/lib/grouparoo-stream", "--http", "0.0.0.0:9464"]);
    expect(one(final, "VOLUME").exec).toEqual(["/var/lib/grouparoo-stream"]);
    expect(one(final, "EXPOSE").args).toBe("9464");
    expect(one(final, "STOPSIGNAL").args).toBe("SIGTERM");
    const owned = all(final, "RUN").find((r) => r.args.includes("chown"));
    expect(owned?.args).toContain("chown 1000:1000 /var/lib/grouparoo-stream");
  });

  it("checks /healthz with Node's fetch, not curl", () => {
    const health = one(final, "HEALTHCHECK");
    expect(health.flags).toEqual({ interval: "30s", timeout: "5s", "start-period": "30s", retries: "3" });
    expect(health.exec?.slice(0, 2)).toEqual(["node", "-e"]);
    expect(health.exec?.[2]).toContain("fetch('http://127.0.0.1:9464/healthz')");
  });

  it("fetches nothing from a URL and sets no secret", () => {
    for (const stage of stages) {
      for (const instruction of stage.instructions) {
        expect(instruction.keyword, `line ${instruction.line}`).not.toBe("ADD");
        if (instruction.keyword === "RUN") expect(instruction.args, `line ${instruction.line}`).not.toMatch(/\b(curl|wget)\b|https?:\/\//);
        if (instruction.keyword === "ENV" || instruction.keyword === "ARG") expect(instruction.args, `line ${instruction.line}`).not.toMatch(/PASSWORD|SECRET|TOKEN|KEY/i);
      }
    }
  });
});
