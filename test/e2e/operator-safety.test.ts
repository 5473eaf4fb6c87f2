// Issue #12 against real Postgres, the daemon run as a process:
// - the fault test (items 2, 7): two postgres apps on two databases; one loses its table, the other
//   keeps streaming and delivering, /readyz names the broken app with the reason, and the log holds one
//   error line for it, not one per retry; a third app whose server refuses connections reconnects at
//   warn, with the stack only the first time; debug lines and the start line are there; positions are
//   X/Y;
// - the start-time check (item 2): a missing table, or a column a property reads missing, is exit 78
//   naming the source and table (and the property and column), for `run` and for `validate --connect`;
// - the lock (item 1): a second daemon on one state exits 75 naming the holder; SIGKILL the first and
//   the next starts at once; `retry-exports` and the read-only commands work beside a running daemon;
// - delivery failures (item 3): a row a CHECK constraint rejects is a dead-lettered export with a log
//   line and a reason `dead-letters` shows; a destination that is down is logged, not once per retry.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { get, sample, startDaemon, waitFor, type DaemonProcess, logLines } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const lines = logLines;

describe("operating the daemon", () => {
  let a: TestDatabase;
  let b: TestDatabase;
  let work: string;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    a = await createTestDatabase(testPgUrl(), "ops_a");
    b = await createTestDatabase(testPgUrl(), "ops_b");
    for (const db of [a, b]) {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
      await db.query(`INSERT INTO users VALUES (1, 'ada@example.com')`);
    }
    await b.query(`CREATE TABLE contacts (id int PRIMARY KEY, email text CHECK (email LIKE '%@%'))`);
    work = mkdtempSync(join(tmpdir(), "ops-"));
  });
  afterAll(async () => {
    for (const d of daemons) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill("SIGKILL");
        await d.exited;
      }
    }
    await a?.drop();
    await b?.drop();
    rmSync(work, { recursive: true, force: true });
  });
  const start = (args: string[], http: string, env: NodeJS.ProcessEnv = process.env) => {
    const daemon = startDaemon(args, http, env);
    daemons.push(daemon);
    return daemon;
  };

  it("keeps the healthy app streaming and delivering when another loses its table; names it on /readyz; logs it once", { timeout: 90_000 }, async () => {
    const closed = await freePort();
    const config = join(work, "fault.yml");
    writeFileSync(
      config,
      `
- { class: app, id: a, type: postgres, options: { connectionString: "${a.url}", slot: ops_a_slot, publication: ops_a_pub } }
- { class: app, id: b, type: postgres, options: { connectionString: "${b.url}", slot: ops_b_slot, publication: ops_b_pub } }
- { class: app, id: c, type: postgres, options: { connectionString: "postgres://postgres@127.0.0.1:${closed}/nowhere", slot: ops_c_slot } }
- { class: app, id: files, type: file, options: { directory: "${work}/out" } }
- { class: model, id: users_a }
- { class: model, id: users_b }
- { class: model, id: users_c }
- { class: source, id: a_users, type: postgres-cdc, appId: a, modelId: users_a, options: { table: users }, mapping: { id: a_id } }
- { class: source, id: b_users, type: postgres-cdc, appId: b, modelId: users_b, options: { table: users }, mapping: { id: b_id } }
- { class: source, id: c_users, type: postgres-cdc, appId: c, modelId: users_c, options: { table: users }, mapping: { id: c_id } }
- { class: property, id: a_id, type: integer, unique: true, sourceId: a_users, options: { column: id } }
- { class: property, id: b_id, type: integer, unique: true, sourceId: b_users, options: { column: id } }
- { class: property, id: c_id, type: integer, unique: true, sourceId: c_users, options: { column: id } }
- { class: destination, id: b_file, type: jsonl-file, appId: files, modelId: users_b, collection: model, syncMode: sync, options: { path: b.jsonl }, mapping: { id: b_id } }
`,
    );
    const http = `127.0.0.1:${await freePort()}`;
    const state = join(work, "fault-state");
    const daemon = start(["--config", config, "--state", state], http, { ...process.env, LOG_LEVEL: "debug" });
    await waitFor("apps a and b streaming", async () => (lines(daemon).filter((l) => l.msg === "streaming from the replication slot").length >= 2 ? true : undefined), 30_000);
    // Logged once the listener listens too (its thread boots while the sources start).
    await waitFor("the start line", async () => (lines(daemon).some((l) => l.msg === "grouparoo-stream running") ? true : undefined), 30_000);

    // The start line (item 7): version, pid, state, config digest, object counts.
    const started = lines(daemon).find((l) => l.msg === "grouparoo-stream running");
    expect(started).toMatchObject({ level: 30, pid: daemon.child.pid, state, config, objects: "4 apps, 3 models, 3 sources, 3 properties, 1 destination" });
    expect(started?.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(started?.configDigest).toMatch(/^[0-9a-f]{12}$/);
    // The unreachable app was not a reason to refuse the start, only a warning.
    expect(lines(daemon).find((l) => String(l.msg).startsWith('app "c": cannot reach the database to check it'))?.level).toBe(40);

    // App a loses its table; its walsender goes away, and the reconnect finds the table missing.
    await a.query(`DROP TABLE users`);
    await a.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'ops_a_slot' AND active_pid IS NOT NULL`);
    await waitFor("/readyz names app a", async () => {
      const ready = await get(http, "/readyz");
      return ready.status === 503 && ready.body.includes("sources failing: a (") ? ready.body : undefined;
    });
    const ready = await get(http, "/readyz");
    expect(ready.body).toContain('sources failing: a (relation "public.users" does not exist (SQLSTATE 42P01))');
    expect(ready.body).toContain("sources not connected: c");

    // App b goes on: streamed and delivered.
    await b.query(`INSERT INTO users VALUES (2, 'bob@example.com'), (3, 'cy@example.com')`);
    await waitFor("b streams", async () => (sample((await get(http, "/metrics")).body, 'grouparoo_records{model="users_b"}') === 3 ? true : undefined));
    await waitFor("b delivers", async () => {
      const file = join(work, "out", "b.jsonl");
      return existsSync(file) && readFileSync(file, "utf8").trim().split("\n").length === 3 ? true : undefined;
    });
    // A window in which a retry loop would have logged many times over (0.5 s, 1 s, 2 s, 4 s, ...).
    await new Promise((r) => setTimeout(r, 8000));
    const errorsOfA = lines(daemon).filter((l) => l.level >= 50 && l.app === "a");
    expect(errorsOfA).toHaveLength(1);
    expect(errorsOfA[0]).toMatchObject({ msg: "postgres replication cannot run until this is fixed; other apps go on", attempt: 1 });
    expect(lines(daemon).filter((l) => l.level >= 50 && l.app !== "a")).toEqual([]);

    // App c's server refuses connections: reconnects at warn, the stack only the first time.
    const reconnects = lines(daemon).filter((l) => l.app === "c" && l.msg === "postgres replication failed; reconnecting");
    expect(reconnects.length).toBeGreaterThanOrEqual(3);
    expect(reconnects.every((l) => l.level === 40)).toBe(true);
    expect((reconnects[0]?.err as { stack?: string } | undefined)?.stack).toContain("ECONNREFUSED");
    expect(reconnects.slice(1).every((l) => l.err === undefined && String(l.error).includes("ECONNREFUSED"))).toBe(true);

    // Debug lines exist (item 7): batches with their positions, acknowledgements; positions are X/Y.
    const batches = lines(daemon).filter((l) => l.level === 20 && l.msg === "batch committed; positions acknowledged to their sources");
    expect(batches.length).toBeGreaterThan(0);
    expect(lines(daemon).some((l) => l.level === 20 && l.msg === "acknowledging the slot up to the durable position" && /^[0-9A-F]+\/[0-9A-F]+$/.test(String(l.lsn)))).toBe(true);
    const lsns = [...daemon.logs().matchAll(/"(?:from|lsn|consistentPoint)":"([^"]+)"/g)].map((m) => m[1]);
    expect(lsns.length).toBeGreaterThan(0);
    for (const lsn of lsns) expect(lsn).toMatch(/^[1-9A-F][0-9A-F]*\/[0-9A-F]+$|^0\/[0-9A-F]+$/);

    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    // No "resuming" during the drain.
    expect(daemon.logs()).not.toContain("resuming sources");
    // status reads the state it left: positions in Postgres's format.
    const status = JSON.parse((await runCli(["status", "--state", state, "--json"])).stdout) as { positions: { stream: string; position: string }[]; records: { model: string; count: number }[] };
    expect(status.records).toContainEqual({ model: "users_b", count: 3 });
    const position = status.positions.find((p) => p.stream === "postgres:b")?.position;
    expect(position).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(position).not.toMatch(/^0{2,}/);
  });

  it("refuses to start, with 78 naming the source and its table, when a table is missing; validate --connect says the same", async () => {
    const config = join(work, "missing.yml");
    writeFileSync(
      config,
      `
- { class: app, id: a, type: postgres, options: { connectionString: "${a.url}", slot: ops_missing_slot } }
- { class: model, id: users }
- { class: source, id: a_users, type: postgres-cdc, appId: a, modelId: users, options: { table: nosuch }, mapping: { id: a_id } }
- { class: property, id: a_id, type: integer, unique: true, sourceId: a_users, options: { column: id } }
`,
    );
    const run = await runCli(["run", "--config", config, "--state", join(work, "missing-state"), "--http", "127.0.0.1:0"]);
    expect(run.code).toBe(78);
    expect(run.stdout).toContain('"msg":"source \\"a_users\\": table public.nosuch does not exist; not starting"');
    const validated = await runCli(["validate", "--config", config, "--connect"]);
    expect(validated.code).toBe(78);
    expect(validated.stderr).toBe(`error: source "a_users": table public.nosuch does not exist\n${config}: the live check failed: 1 error\n`);
    expect((await runCli(["validate", "--config", config])).code).toBe(0);
  });

  it("refuses to start, with 78 naming the property, its column and the table, when a property reads a column the table lacks; validate --connect says the same", async () => {
    // A table of its own: the fault test drops a's users.
    await a.query(`CREATE TABLE people (id int PRIMARY KEY, name text)`);
    const config = join(work, "missing-column.yml");
    writeFileSync(
      config,
      `
- { class: app, id: a, type: postgres, options: { connectionString: "${a.url}", slot: ops_missing_column_slot } }
- { class: model, id: users }
- { class: source, id: a_people, type: postgres-cdc, appId: a, modelId: users, options: { table: people }, mapping: { id: a_id } }
- { class: property, id: a_id, type: integer, unique: true, sourceId: a_people, options: { column: id } }
- { class: property, id: nickname, type: string, sourceId: a_people, options: { column: no_such_col } }
`,
    );
    const message = 'source "a_people": property "nickname" reads column no_such_col (options.column), which table public.people does not have';
    const run = await runCli(["run", "--config", config, "--state", join(work, "missing-column-state"), "--http", "127.0.0.1:0"]);
    expect(run.code).toBe(78);
    expect(run.stdout).toContain(`"msg":${JSON.stringify(`${message}; not starting`)}`);
    const validated = await runCli(["validate", "--config", config, "--connect"]);
    expect(validated.code).toBe(78);
    expect(validated.stderr).toBe(`error: ${message}\n${config}: the live check failed: 1 error\n`);
  });

  it("validate --connect checks a kafka app: its cluster reached, the topics its sources name there", async () => {
    const config = join(work, "kafka.yml");
    const write = (brokers: string) =>
      writeFileSync(
        config,
        `
- { class: app, id: bus, type: kafka, options: { brokers: ["${brokers}"], groupId: ops-check } }
- { class: model, id: users }
- { class: source, id: users_topic, type: kafka-debezium, appId: bus, modelId: users, options: { topic: ops.no.such.topic }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_topic, options: { column: id } }
`,
      );
    // Before, it printed "checked against the live systems" without reaching the brokers.
    write(`127.0.0.1:${await freePort()}`);
    const down = await runCli(["validate", "--config", config, "--connect"]);
    expect(down.code).toBe(0);
    expect(down.stderr).toMatch(/^warning: app "bus": cannot be reached: .+\n$/);
    // The last line says what was not checked, not only stderr.
    expect(down.stdout).toBe(`${config}: valid config: 1 app, 1 model, 1 source, 1 property (checked against the live systems, with 1 warning above: what it names was not checked)\n`);
    write(testKafkaBrokers()[0] as string);
    const up = await runCli(["validate", "--config", config, "--connect"]);
    expect(up.code).toBe(0);
    expect(up.stderr).toBe('warning: source "users_topic": topic ops.no.such.topic does not exist on the cluster of app "bus" (yet: the source reads it once it does)\n');
  });

  it("holds one daemon per state; survives SIGKILL; logs and lists delivery failures; retry-exports and status work beside it", { timeout: 90_000 }, async () => {
    const down = await freePort();
    const config = join(work, "lock.yml");
    writeFileSync(
      config,
      `
- { class: app, id: b, type: postgres, options: { connectionString: "${b.url}", slot: ops_lock_slot, publication: ops_lock_pub } }
- { class: app, id: hooks, type: webhook, options: { url: "http://127.0.0.1:${down}/hook", timeoutMs: 500 } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: b, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: string, sourceId: users_table, options: { column: email } }
- { class: destination, id: contacts, type: postgres-table, appId: b, modelId: users, collection: model, syncMode: sync, options: { table: contacts, primaryKey: id }, mapping: { id: user_id, email: email } }
- { class: destination, id: hook, type: webhook, appId: hooks, modelId: users, collection: model, syncMode: sync, options: {}, mapping: { id: user_id } }
`,
    );
    const state = join(work, "lock-state");
    const args = ["--config", config, "--state", state];
    const http = `127.0.0.1:${await freePort()}`;
    const firstStarted = Date.now();
    const first = start(args, http);
    await waitFor("first running", async () => (lines(first).some((l) => l.msg === "streaming from the replication slot") ? true : undefined), 30_000);

    // A second daemon on the same state: 75, naming the holder.
    const second = start(args, `127.0.0.1:${await freePort()}`);
    expect((await second.exited).code).toBe(75);
    expect(lines(second).find((l) => l.level === 50)?.msg).toBe(
      `the state ${state} is in use by another grouparoo-stream daemon (pid ${first.child.pid}): one daemon per state; stop it first, or use another --state`,
    );

    // A row the CHECK constraint rejects: a dead-lettered export, logged with its reason.
    await b.query(`INSERT INTO users VALUES (7, 'not-an-email')`);
    await waitFor("dead letter", async () => (lines(first).some((l) => l.msg.startsWith("export dead-lettered") && l.destination === "contacts") ? true : undefined), 30_000);
    const letter = lines(first).find((l) => l.msg.startsWith("export dead-lettered"));
    expect(letter).toMatchObject({ level: 50, destination: "contacts", recordId: "7" });
    expect(String(letter?.reason)).toContain('violates check constraint "contacts_email_check"');
    // Listed with its reason, read-only, beside the running daemon.
    const listed = await runCli(["dead-letters", "--state", state, "--kind", "export", "--json"]);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ kind: "export", component: "contacts", recordId: "7", reason: expect.stringContaining("contacts_email_check") as string }]);
    // The log names the letter by the seq that lists, replays, retries and deletes it.
    expect(letter?.deadLetterSeq).toBe((JSON.parse(listed.stdout) as { seq: number }[])[0]?.seq);
    const table = await runCli(["dead-letters", "--state", state]);
    expect(table.stdout.split("\n")[0]).toMatch(/^SEQ\s+AT\s+KIND\s+COMPONENT\s+WHERE\s+REASON$/);

    // The webhook is down: retried and counted, and logged, not once per retry.
    await waitFor("retries", async () => ((sample((await get(http, "/metrics")).body, 'grouparoo_exports_total{destination="hook",result="retry"}') ?? 0) >= 6 ? true : undefined), 30_000);
    const retries = sample((await get(http, "/metrics")).body, 'grouparoo_exports_total{destination="hook",result="retry"}') ?? 0;
    const hookLines = lines(first).filter((l) => l.destination === "hook" && l.level >= 40);
    expect(hookLines.length).toBeGreaterThanOrEqual(1);
    // At most one line per 10 s of the outage, however many retries.
    expect(hookLines.length).toBeLessThanOrEqual(1 + Math.floor((Date.now() - firstStarted) / 10_000));
    expect(hookLines.length).toBeLessThan(retries);
    expect(hookLines[0]).toMatchObject({ level: 40, msg: "delivery failed; retrying with backoff" });
    expect(String(hookLines[0]?.lastError)).toContain("/hook failed");

    // retry-exports beside the running daemon: the fixed table takes the re-queued export.
    await b.query(`ALTER TABLE contacts DROP CONSTRAINT contacts_email_check`);
    const retried = await runCli(["retry-exports", ...args, "--destination", "contacts"]);
    expect(retried).toEqual({ code: 0, stdout: "re-queued 1 export for destination contacts\n", stderr: "" });
    await waitFor("re-delivered", async () => ((await b.query(`SELECT email FROM contacts WHERE id = 7`)).rows[0]?.email === "not-an-email" ? true : undefined), 20_000);
    const status = JSON.parse((await runCli(["status", "--state", state, "--json"])).stdout) as { records: unknown[]; deadLetters: unknown };
    const { rows } = await b.query<{ n: number }>(`SELECT count(*)::int AS n FROM users`);
    expect(status.records).toEqual([{ model: "users", count: rows[0]?.n }]);
    // The re-queued letter left the dead letters.
    expect(status.deadLetters).toEqual({ change: 0, message: 0, export: 0 });

    // SIGKILL: no stale lock, the next daemon starts at once.
    first.child.kill("SIGKILL");
    await first.exited;
    const third = start(args, http);
    await waitFor("third running", async () => (lines(third).some((l) => l.msg === "grouparoo-stream running") ? true : undefined), 20_000);
    expect(lines(third).some((l) => l.level >= 50 && String(l.msg).includes("in use"))).toBe(false);
    third.child.kill("SIGTERM");
    expect((await third.exited).code).toBe(0);
  });
});
