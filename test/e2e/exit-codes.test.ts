// Issue #12 items 4, 5 and 8, as an SRE meets them: every flag and environment variable is checked
// before anything starts (64, naming the flag and what it takes), state problems are messages with
// their sysexits code (66, 73, 75) and never stack traces, commands that need a state never create
// one, `status` exists, and an empty config is warned about. The README's Commands table lists them.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../helpers/cli.js";
import { get, startDaemon, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { spawn } from "node:child_process";
import { testPgUrl } from "../services/use.js";


describe("exit codes and messages", () => {
  const work = mkdtempSync(join(tmpdir(), "exit-codes-"));
  /** A config of one jsonl-file destination `d` on one postgres-cdc source (nothing is started from it). */
  const oneDestination = (): string => `
- { class: app, id: files, type: file, options: { directory: "${work}/out" } }
- { class: app, id: db, type: postgres, options: { database: shop } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: db, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: destination, id: d, type: jsonl-file, appId: files, modelId: users, collection: model, syncMode: sync, options: { path: d.jsonl }, mapping: { id: user_id } }
`;
  chmodSync(work, 0o755);
  const empty = join(work, "empty.yml");
  writeFileSync(empty, "[]\n");
  chmodSync(empty, 0o644);
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const run = (args: string[], env: NodeJS.ProcessEnv = process.env) => runCli(["run", "--config", empty, "--state", join(work, "state"), ...args], { env });
  const firstLine = (text: string) => text.split("\n")[0];

  it.each([
    [["--max-batch-size", "abc"], "error: option '--max-batch-size <n>' argument 'abc' is invalid. expected a whole number >= 1"],
    [["--max-batch-size", "0"], "error: option '--max-batch-size <n>' argument '0' is invalid. expected a whole number >= 1"],
    [["--http", "localhost"], "error: option '--http <host:port>' argument 'localhost' is invalid. expected host:port (e.g. 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464), port 0 to 65535"],
    [["--drain-timeout-ms", "10s"], "error: option '--drain-timeout-ms <ms>' argument '10s' is invalid. expected a duration in whole milliseconds >= 0 (e.g. 5000)"],
    [["--delivery-rate", "-1"], "error: option '--delivery-rate <n>' argument '-1' is invalid. expected a whole number >= 0"],
    [["--max-attempts", "ten"], "error: option '--max-attempts <n>' argument 'ten' is invalid. expected a whole number >= 1"],
    [["--api-nice", "20"], "error: option '--api-nice <n>' argument '20' is invalid. expected a whole number from 0 to 19"],
    [["--frobnicate"], "error: unknown option '--frobnicate'"],
  ])("run %j exits 64 naming the flag and what it accepts, before anything starts", async (args, message) => {
    const result = await run(args);
    expect(result.code).toBe(64);
    expect(firstLine(result.stderr)).toBe(message);
    expect(result.stdout).toBe("");
    expect(existsSync(join(work, "state"))).toBe(false);
  });

  it.each([
    [{ LOG_LEVEL: "verbose" }, 'error: LOG_LEVEL "verbose" is invalid: expected one of fatal, error, warn, info, debug, trace, silent'],
    [{ LOG_FORMAT: "xml" }, 'error: LOG_FORMAT "xml" is invalid: expected one of json, pretty'],
  ])("run with %j exits 64 with the variable's name and what it accepts", async (env, message) => {
    const result = await run([], { ...process.env, ...env });
    expect(result).toEqual({ code: 64, stdout: "", stderr: `${message}\n` });
    expect(existsSync(join(work, "state"))).toBe(false);
  });

  it("refuses a --state that is a file with 73 and a message, not a stack", async () => {
    const file = join(work, "a-file");
    writeFileSync(file, "x");
    const result = await runCli(["run", "--config", empty, "--state", file, "--http", "127.0.0.1:0"]);
    expect(result.code).toBe(73);
    expect(result.stdout).toContain(`"msg":"cannot open the state directory ${file}: it (or a parent of it) is a file, not a directory"`);
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
  });

  it("exits 70 naming the address when --http cannot listen, after stopping what had started", async () => {
    const { createServer } = await import("node:net");
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const result = await runCli(["run", "--config", empty, "--state", join(work, "listen-state"), "--http", `127.0.0.1:${port}`]);
      expect(result.code).toBe(70);
      const logged = result.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: number; msg: string; http?: string; err?: { message?: string } });
      const failure = logged.find((l) => l.msg === "cannot listen for HTTP");
      expect(failure).toMatchObject({ level: 50, http: `127.0.0.1:${port}` });
      expect(failure?.err?.message).toContain("EADDRINUSE");
      expect(logged.some((l) => l.msg === "grouparoo-stream running")).toBe(false);
      expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
      // The state was closed and its lock released: a second daemon may take it.
      const again = await runCli(["status", "--state", join(work, "listen-state")]);
      expect(again.code).toBe(0);
    } finally {
      holder.close();
    }
  });

  it("exits 70 naming the lost slot when the pipeline fails as it starts, the listener's thread booting meanwhile", { timeout: 60_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "exit_slot");
    try {
      await db.query("CREATE TABLE users (id int PRIMARY KEY)");
      await db.query("INSERT INTO users VALUES (1)");
      const config = join(work, "slot.yml");
      writeFileSync(
        config,
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: exit_slot, snapshot: initial } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
`,
      );
      const state = join(work, "slot-state");
      const http = `127.0.0.1:${await freePort()}`;
      const first = startDaemon(["--config", config, "--state", state], http);
      await first.until("ready", async () => ((await get(http, "/readyz").catch(() => undefined))?.status === 200 ? true : undefined), 30_000);
      first.child.kill("SIGTERM");
      expect((await first.exited).code).toBe(0);
      // The walsender lets the slot go a moment after the daemon's connection closes (under load, after it exits).
      await waitFor("the slot let go", async () => ((await db.query<{ active: boolean }>("SELECT active FROM pg_replication_slots WHERE slot_name = 'exit_slot'")).rows[0]?.active === false ? true : undefined), 10_000);
      await db.query("SELECT pg_drop_replication_slot('exit_slot')");

      const result = await runCli(["run", "--config", config, "--state", state, "--http", `127.0.0.1:${await freePort()}`]);
      expect(result.code).toBe(70);
      const logged = result.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: number; msg: string; code?: number; err?: { message?: string } });
      expect(logged.some((l) => l.level >= 50 && (l.err?.message ?? "").startsWith("replication slot exit_slot no longer exists but this state has read from it"))).toBe(true);
      expect(logged.find((l) => l.msg === "stopped")).toMatchObject({ code: 70 });
      expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await db.drop();
    }
  });

  it("refuses an unwritable --state with 73 and a message, not a stack", async () => {
    const locked = join(work, "locked");
    mkdirSync(locked, { mode: 0o700 });
    const state = join(locked, "state");
    // A directory it cannot write. Root ignores permissions through CAP_DAC_OVERRIDE: as root the daemon
    // runs without it (and without CAP_DAC_READ_SEARCH), still able to read the checkout wherever it is.
    chmodSync(locked, 0o500);
    const root = process.getuid?.() === 0;
    const args = [CLI, "run", "--config", empty, "--state", state, "--http", "127.0.0.1:0"];
    const [command, argv] = root ? ["setpriv", ["--bounding-set=-dac_override,-dac_read_search", "--", process.execPath, ...args]] : [process.execPath, args];
    const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(73);
    expect(out).toContain(`"msg":"cannot open the state directory ${state}: permission denied (the daemon's user must be able to create and write it)"`);
    expect(out).not.toMatch(/\n\s+at /);
  });

  it.each([
    [["retry-exports", "--config", "CONFIG", "--destination", "d"]],
    [["runs"]],
    [["status"]],
    [["dead-letters"]],
    [["rebuild", "--config", "CONFIG", "--all"]],
  ])("%j on a --state with a typo exits 66 and creates nothing", async (args) => {
    const config = join(work, "one-destination.yml");
    writeFileSync(
      config,
      oneDestination(),
    );
    const typo = join(work, "sttae");
    const result = await runCli([...args.map((a) => (a === "CONFIG" ? config : a)), "--state", typo]);
    expect(result).toEqual({ code: 66, stdout: "", stderr: `error: no state at ${typo}: the directory does not exist (check --state; nothing was created)\n` });
    expect(existsSync(typo)).toBe(false);
  });

  it("retry-exports with --since after --until exits 64 saying so, as the API answers 400 (it re-queued 0 and exited 0)", async () => {
    const config = join(work, "retry-range.yml");
    writeFileSync(
      config,
      oneDestination(),
    );
    const state = join(work, "retry-range-state");
    const result = await runCli(["retry-exports", "--config", config, "--state", state, "--destination", "d", "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"]);
    expect(result).toEqual({ code: 64, stdout: "", stderr: "error: --since 2026-12-02T00:00:00Z is after --until 2026-12-01T00:00:00Z: no dead letter is in that range\n" });
    expect(existsSync(state)).toBe(false);
  });

  it("has a status command with its own help (item 8)", async () => {
    const help = await runCli(["status", "--help"]);
    expect(help.code).toBe(0);
    expect(firstLine(help.stdout)).toBe("Usage: grouparoo-stream status [options]");
    const bad = await runCli(["dead-letters", "--state", work, "--kind", "all"]);
    expect(bad.code).toBe(64);
    expect(firstLine(bad.stderr)).toBe("error: option '--kind <kind>' argument 'all' is invalid. expected one of change, message, export");
  });

  it.each([["relay"], ["worker"]])("%s checks its flags and LOG_LEVEL as run does, and refuses a state another process holds (75)", async (mode) => {
    const state = join(work, `${mode}-state`);
    const flag = await runCli([mode, "--config", empty, "--state", state, "--max-batch-size", "abc"]);
    expect(flag.code).toBe(64);
    expect(firstLine(flag.stderr)).toBe("error: option '--max-batch-size <n>' argument 'abc' is invalid. expected a whole number >= 1");
    const level = await runCli([mode, "--config", empty, "--state", state], { env: { ...process.env, LOG_LEVEL: "verbose" } });
    expect(level).toEqual({ code: 64, stdout: "", stderr: 'error: LOG_LEVEL "verbose" is invalid: expected one of fatal, error, warn, info, debug, trace, silent\n' });
    expect(existsSync(state)).toBe(false);
    const http = `127.0.0.1:${await freePort()}`;
    const daemon = startDaemon(["--config", empty, "--state", state], http);
    try {
      await waitFor("/healthz", async () => ((await get(http, "/healthz")).status === 200 ? true : undefined));
      const held = await runCli([mode, "--config", empty, "--state", state, "--http", "127.0.0.1:0"]);
      expect(held).toEqual({ code: 75, stdout: "", stderr: `error: the state ${state} is in use by another grouparoo-stream daemon (pid ${daemon.child.pid}): one daemon per state; stop it first, or use another --state\n` });
    } finally {
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    }
    // Free, the state is taken; this config has no partitioned model, which is a config error.
    const free = await runCli([mode, "--config", empty, "--state", state, "--http", "127.0.0.1:0"]);
    expect(free.code).toBe(78);
    expect(free.stdout).toContain("no model of this config is partitioned");
  });

  it("warns about a config with no sources in validate and run (item 8)", async () => {
    const validated = await runCli(["validate", "--config", empty]);
    expect(validated).toEqual({ code: 0, stdout: `${empty}: valid config: nothing defined\n`, stderr: `warning: ${empty}: the config defines no sources: the daemon would run idle\n` });
    const http = `127.0.0.1:${await freePort()}`;
    const daemon = startDaemon(["--config", empty, "--state", join(work, "idle-state")], http);
    await waitFor("/healthz", async () => ((await get(http, "/healthz")).status === 200 ? true : undefined));
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    const warning = daemon.logs().split("\n").find((l) => l.includes("run idle"));
    expect(JSON.parse(warning ?? "{}")).toMatchObject({ level: 40, msg: "the config defines no sources: the daemon would run idle" });
  });

  // Linux only (/proc): the API thread's nice value is --api-nice; the daemon's own thread keeps the process's.
  it.runIf(process.platform === "linux")("runs the API thread at the --api-nice value, and every thread at the process's priority without it", async () => {
    const niceOf = (pid: number) =>
      readdirSync(`/proc/${pid}/task`).map((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]) };
      });
    for (const [args, expected] of [[["--api-nice", "7"], 7], [[], 0]] as const) {
      const http = `127.0.0.1:${await freePort()}`;
      const daemon = startDaemon(["--config", empty, "--state", join(work, `nice-state-${expected}`), ...args], http);
      try {
        // The listener is the API thread's: once it answers, the thread has set its priority.
        await daemon.until("/healthz", async () => ((await get(http, "/healthz")).status === 200 ? true : undefined));
        const threads = niceOf(daemon.child.pid ?? 0);
        expect(threads.find((t) => t.tid === daemon.child.pid)?.nice).toBe(0);
        expect(threads.filter((t) => t.nice !== 0).length).toBe(expected === 0 ? 0 : 1);
        if (expected !== 0) expect(threads.find((t) => t.nice !== 0)?.nice).toBe(expected);
      } finally {
        daemon.child.kill("SIGTERM");
        expect((await daemon.exited).code).toBe(0);
      }
    }
  });

  it("logs readable lines with LOG_FORMAT=pretty (item 7)", async () => {
    const http = `127.0.0.1:${await freePort()}`;
    const daemon = startDaemon(["--config", empty, "--state", join(work, "pretty-state")], http, { ...process.env, LOG_FORMAT: "pretty", LOG_LEVEL: "debug" });
    await waitFor("running", async () => (daemon.logs().includes("grouparoo-stream running") ? true : undefined));
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    const running = daemon.logs().split("\n").find((l) => l.includes("grouparoo-stream running")) ?? "";
    expect(running).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} [^\]]+\] INFO/);
    expect(() => JSON.parse(running) as unknown).toThrow();
    expect(running).toContain(`INFO (${daemon.child.pid}): grouparoo-stream running`);
  });

  it("refuses a connection string the driver cannot parse in validate (item 2)", async () => {
    const config = join(work, "bad-url.yml");
    writeFileSync(config, `- { class: app, id: db, type: postgres, options: { connectionString: "postgres://app:secret@127.0.0.1:notaport/shop" } }\n`);
    const result = await runCli(["validate", "--config", config]);
    expect(result.code).toBe(78);
    expect(firstLine(result.stderr)).toBe(`error: ${config}: app "db": options.connectionString: is not a valid connection URI (Invalid URL); expected postgres://user:password@host:port/database`);
    expect(result.stderr).not.toContain("secret");
  });

  it("refuses a Node that will not compile code from text with 64 and why, whether the flag is on its command line or in NODE_OPTIONS", async () => {
    const example = new URL("../../examples/users-purchases", import.meta.url).pathname;
    const message = "error: Node refuses to compile code from text here (--disallow-code-generation-from-strings, on its command line or in NODE_OPTIONS), and grouparoo-stream needs it: its config validation, HTTP API and group rules compile functions when they start. Start it without that flag\n";
    const spawned = (nodeArgs: string[], args: string[], env: NodeJS.ProcessEnv = process.env) => runCli(args, { env, nodeArgs });
    expect(await spawned(["--disallow-code-generation-from-strings"], ["validate", "--config", example])).toEqual({ code: 64, stdout: "", stderr: message });
    expect(await spawned([], ["run", "--config", example, "--state", join(work, "state")], { ...process.env, NODE_OPTIONS: "--disallow-code-generation-from-strings" })).toEqual({ code: 64, stdout: "", stderr: message });
    // Whatever the arguments say: a config path named "help" is a path.
    expect(await spawned(["--disallow-code-generation-from-strings"], ["validate", "--config", "help"])).toEqual({ code: 64, stdout: "", stderr: message });
    // Printing the version or the help compiles nothing.
    const version = await spawned(["--disallow-code-generation-from-strings"], ["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    for (const args of [["--help"], ["help", "run"], ["run", "--help"], ["validate", "-h"]]) {
      const help = await spawned(["--disallow-code-generation-from-strings"], args);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: grouparoo-stream /);
    }
    // Without the flag, the same config validates.
    expect((await spawned([], ["validate", "--config", example])).code).toBe(0);
  });

  it("refuses an open-file limit below 256 in run, relay and worker with 78, naming the limit and where it is set", async () => {
    const limited = (limit: number, args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn("bash", ["-c", `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, stdout, stderr }));
      });
    const state = join(work, "fd-state");
    for (const [limit, command] of [[24, "run"], [64, "run"], [255, "relay"], [100, "worker"]] as const) {
      const result = await limited(limit, [command, "--config", empty, "--state", state]);
      expect(result).toEqual({
        code: 78,
        stdout: "",
        stderr: `error: the process may open at most ${limit} files; grouparoo-stream ${command} needs at least 256: raise the open-file limit (LimitNOFILE= under systemd, --ulimit nofile= for a container, ulimit -n in a shell)\n`,
      });
      expect(existsSync(state)).toBe(false);
    }
    // Commands that do not run on are not held to it, nor is a long-running command's help.
    expect((await limited(64, ["run", "--help"])).code).toBe(0);
    const validated = await limited(64, ["validate", "--config", empty]);
    expect(validated.code).toBe(0);
    // At the floor, run starts: it gets past the check to the config (an empty one runs until stopped,
    // so an invalid flag value ends it with 64 where the check would have said 78).
    expect((await limited(256, ["run", "--config", empty, "--state", state, "--max-batch-size", "0"])).code).toBe(64);
  });
});
