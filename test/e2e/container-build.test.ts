// The Containerfile's build, run as a script: no container engine runs on the test machines (and no
// base image can be pulled), so the steps deploy/container/Containerfile names are carried out in
// temporary directories standing for the two stages: the build stage's COPY and RUN lines exactly
// as written (npm ci, build, prune), the final stage's COPY --from=build and its mkdir/chown RUN line
// (paths under the image's root), all but the apt-get install of tini. The image tree must hold
// dist/daemon/cli.js, every dependency and no devDependency. Then the daemon starts from it the way
// ENTRYPOINT and CMD say (without tini, which this machine lacks), as the USER (uid 1000), in a network
// namespace of its own so it binds 0.0.0.0:9464 exactly as in the container, with the example config
// at /etc/grouparoo-stream; the HEALTHCHECK command, run as written, passes; SIGTERM drains to exit 0;
// the same HEALTHCHECK then fails.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { all, readContainerfile, type Stage } from "../helpers/containerfile.js";

const repo = new URL("../..", import.meta.url).pathname;
const [buildStage, finalStage] = readContainerfile(join(repo, "deploy/container/Containerfile")) as [Stage, Stage];
const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
/** Where this machine's Node keeps its headers (the image's Node keeps them under /usr/local). */
const hostNodePrefix = dirname(dirname(process.execPath));

/** Carries out a stage's instructions with `/` standing at `root`; returns the RUN lines skipped. */
function runStage(stage: Stage, root: string, roots: Record<string, string>, log: string[]): string[] {
  const at = (path: string, cwd: string) => (path.startsWith("/") ? join(root, path) : join(cwd, path));
  let cwd = root;
  // A container build sees no npm_* variables; an `npm test` run would hand its own (npm_config_local_prefix, ...) to npm ci.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
  const skipped: string[] = [];
  for (const instruction of stage.instructions) {
    switch (instruction.keyword) {
      case "WORKDIR":
        cwd = at(instruction.args, cwd);
        mkdirSync(cwd, { recursive: true });
        break;
      case "ENV":
        for (const [, name, value] of instruction.args.matchAll(/(\w+)=(\S+)/g)) {
          if (name === "npm_config_nodedir") {
            expect(value).toBe("/usr/local");
            env[name as string] = hostNodePrefix;
          } else env[name as string] = value;
        }
        break;
      case "COPY": {
        const words = instruction.args.split(/\s+/);
        const dest = words.at(-1) as string;
        const sources = words.slice(0, -1);
        const from = instruction.flags.from;
        for (const source of sources) {
          const src = from === undefined ? join(repo, source) : join(roots[from] as string, source);
          const target = dest.endsWith("/") ? join(at(dest, cwd), source.split("/").at(-1) as string) : at(dest, cwd);
          cpSync(src, target, { recursive: true, verbatimSymlinks: true });
        }
        break;
      }
      case "RUN": {
        if (/\bapt-get\b/.test(instruction.args)) {
          skipped.push(instruction.args);
          break;
        }
        const command = instruction.args.replace(/(^|\s)\/(etc|var)\//g, `$1${root}/$2/`);
        const began = performance.now();
        const result = spawnSync("sh", ["-c", command], { cwd, env, encoding: "utf8", timeout: 300_000 });
        log.push(`RUN ${instruction.args} (${((performance.now() - began) / 1000).toFixed(1)} s, exit ${result.status})`);
        expect(result.status, `RUN ${instruction.args}\n${result.stdout}\n${result.stderr}`).toBe(0);
        break;
      }
      default:
        break;
    }
  }
  return skipped;
}

describe("deploy/container/Containerfile, built as a script", () => {
  const work = mkdtempSync(join(tmpdir(), "image-"));
  chmodSync(work, 0o755);
  const buildRoot = join(work, "build");
  const imageRoot = join(work, "image");
  const log: string[] = [];
  let skipped: string[] = [];
  const netns: { holder?: ChildProcess } = {};

  beforeAll(() => {
    skipped = runStage(buildStage, buildRoot, {}, log);
    expect(skipped).toEqual([]);
    skipped = runStage(finalStage, imageRoot, { build: buildRoot }, log);
    console.log(log.join("\n"));
  }, 600_000);
  afterAll(() => {
    if (netns.holder?.pid !== undefined && netns.holder.exitCode === null) process.kill(netns.holder.pid, "SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });

  it("skips only the apt-get install of tini", () => {
    expect(skipped).toEqual(["apt-get update  && apt-get install -y --no-install-recommends tini  && rm -rf /var/lib/apt/lists/*"]);
  });

  it("produces an image tree with the compiled daemon, its dependencies and no devDependency", () => {
    const app = join(imageRoot, "app");
    expect(readdirSync(app).sort()).toEqual(["dist", "node_modules", "package.json", "schema"]);
    expect(existsSync(join(app, "dist/daemon/cli.js"))).toBe(true);
    const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [e.name]));
    expect(walk(join(app, "dist")).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    for (const name of Object.keys(pkg.dependencies)) expect(existsSync(join(app, "node_modules", name, "package.json")), name).toBe(true);
    for (const name of Object.keys(pkg.devDependencies)) expect(existsSync(join(app, "node_modules", name)), name).toBe(false);
    for (const tool of ["typescript", "vitest", "eslint", "tsx", "esbuild", "vite"]) expect(existsSync(join(app, "node_modules", tool)), tool).toBe(false);
    expect(existsSync(join(app, "node_modules/unix-dgram/build/Release/unix_dgram.node"))).toBe(true);
    expect(existsSync(join(app, "node_modules/@lmdb/lmdb-linux-x64"))).toBe(true);
    const state = statSync(join(imageRoot, "var/lib/grouparoo-stream"));
    expect([state.uid, state.gid, state.mode & 0o777]).toEqual([1000, 1000, 0o700]);
    expect(existsSync(join(imageRoot, "etc/grouparoo-stream"))).toBe(true);
  });

  it("runs as uid 1000 on 0.0.0.0:9464, passes its HEALTHCHECK, drains on SIGTERM, then fails it", async () => {
    const user = (all(finalStage, "USER")[0]?.args ?? "").split(":");
    expect(user).toEqual(["1000", "1000"]);
    const entrypoint = all(finalStage, "ENTRYPOINT")[0]?.exec ?? [];
    const cmd = all(finalStage, "CMD")[0]?.exec ?? [];
    const health = all(finalStage, "HEALTHCHECK")[0]?.exec ?? [];
    expect(entrypoint.slice(0, 2)).toEqual(["/usr/bin/tini", "--"]);
    const inImage = (word: string) => word.replace(/^\/(app|etc|var)(\/|$)/, `${imageRoot}/$1$2`);
    const argv = [...entrypoint.slice(2), ...cmd].map(inImage);
    expect(argv[0]).toBe("node");
    cpSync(join(repo, "examples/users-purchases"), join(imageRoot, "etc/grouparoo-stream"), { recursive: true });

    // A network namespace of its own (loopback only): the daemon binds 0.0.0.0:9464 as in the
    // container, and the example's Postgres address leads nowhere.
    const holder = spawn("unshare", ["--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 600"], { stdio: ["ignore", "pipe", "pipe"] });
    netns.holder = holder;
    await new Promise<void>((resolve, reject) => {
      holder.stdout?.once("data", () => resolve());
      holder.once("exit", (code) => reject(new Error(`unshare --net failed (${code}): this test needs root, unshare and ip`)));
    });
    const inNetns = ["--net=/proc/" + holder.pid + "/ns/net", "setpriv", `--reuid=${user[0]}`, `--regid=${user[1]}`, "--clear-groups"];
    const env = { PATH: process.env.PATH, HOME: "/nonexistent", NODE_ENV: "production", LOG_LEVEL: "info" };
    const healthcheck = () => spawnSync("nsenter", [...inNetns, ...health], { env, encoding: "utf8", timeout: 10_000 }).status;

    const daemon = spawn("nsenter", [...inNetns, process.execPath, ...argv.slice(1)], { env, stdio: ["ignore", "pipe", "pipe"] });
    let logs = "";
    daemon.stdout?.on("data", (chunk: Buffer) => (logs += chunk.toString()));
    daemon.stderr?.on("data", (chunk: Buffer) => (logs += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => daemon.once("exit", (code) => resolve(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (healthcheck() !== 0) {
        if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`HEALTHCHECK never passed; daemon logs:\n${logs}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      // /healthz passes once the listener listens; /readyz says "starting" until the daemon runs.
      const readyz = () => spawnSync("nsenter", [...inNetns, "node", "-e", "fetch('http://127.0.0.1:9464/readyz').then(async (r) => console.log(r.status, (await r.text()).trim()))"], { env, encoding: "utf8" }).stdout;
      let ready = readyz();
      for (const until = Date.now() + 20_000; ready === "503 not ready: starting\n" && Date.now() < until; ready = readyz()) await new Promise((r) => setTimeout(r, 250));
      expect(ready).toBe("503 not ready: sources not connected: shop_db\n");
      const owners = readdirSync(join(imageRoot, "var/lib/grouparoo-stream")).map((f) => statSync(join(imageRoot, "var/lib/grouparoo-stream", f)).uid);
      expect(owners.length).toBeGreaterThan(0);
      expect(new Set(owners)).toEqual(new Set([1000]));
      const running = readFileSync(`/proc/${daemon.pid}/status`, "utf8");
      expect(/^Uid:\s+(\d+)/m.exec(running)?.[1]).toBe("1000");
      daemon.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(logs).toContain('"msg":"stopped"');
      expect(healthcheck()).toBe(1);
    } finally {
      if (daemon.exitCode === null && daemon.pid !== undefined) process.kill(daemon.pid, "SIGKILL");
    }
  }, 60_000);
});
