// Issue #12 against real LMDB state: one daemon per state (item 1), states that are refused rather
// than created (items 4, 5), the status and dead-letter listings read-only (items 3, 8), and metrics
// that tell the truth, each driven by a known change and asserted exactly (item 6).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { recordCommitted } from "../../daemon/observe.js";
import { createMetrics } from "../../metrics/registry.js";
import { DaemonLock, LOCK_FILE, StateOpenError } from "../../state/open.js";
import { RelayState } from "../../state/relay.js";
import { Store } from "../../state/store.js";
import { applyBatch } from "../../streams/batch.js";
import { deadLetters, stateStatus } from "../../streams/inspect.js";
import { sample } from "../helpers/daemon.js";
import { change, coreDomain, user } from "../helpers/core.js";

const T = Date.UTC(2026, 10, 1, 12, 0, 0);

describe("opening a state", () => {
  let dir: string;
  beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), "op-state-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const problem = (open: () => unknown) => {
    try {
      open();
    } catch (error) {
      if (error instanceof StateOpenError) return { problem: error.problem, message: error.message, holder: error.holderPid };
      throw error;
    }
    return undefined;
  };

  it("lets one daemon hold a state: a second open fails naming the holder's pid, and works once released", async () => {
    const state = join(dir, "state");
    const first = Store.open(state, { lock: true });
    expect(readFileSync(join(state, LOCK_FILE), "utf8")).toBe(`${process.pid}\n`);
    expect(problem(() => Store.open(state, { lock: true }))).toEqual({
      problem: "locked",
      holder: process.pid,
      message: `the state ${state} is in use by another grouparoo-stream daemon (pid ${process.pid}): one daemon per state; stop it first, or use another --state`,
    });
    // Commands beside the daemon do not take the lock: LMDB shares the environment between them.
    const beside = Store.open(state, { create: false });
    await beside.putMeta("beside", true);
    await beside.close();
    const reader = Store.open(state, { readOnly: true });
    expect(reader.getMeta("beside")).toBe(true);
    await reader.close();
    await first.close();
    const again = Store.open(state, { lock: true });
    await again.close();
    // The lock file stays (removing it would race a starting daemon); it is not a lock by itself.
    const lock = DaemonLock.acquire(state);
    lock.release();
  });

  it("refuses a missing or empty state when it must exist, and creates nothing", () => {
    const missing = join(dir, "typo");
    expect(problem(() => Store.open(missing, { create: false }))).toMatchObject({ problem: "missing", message: `no state at ${missing}: the directory does not exist (check --state; nothing was created)` });
    expect(problem(() => Store.open(missing, { readOnly: true }))?.problem).toBe("missing");
    expect(existsSync(missing)).toBe(false);
    expect(problem(() => Store.open(dir, { readOnly: true }))).toMatchObject({ problem: "missing", message: `no state at ${dir}: the directory holds no LMDB state (data.mdb) (check --state; nothing was created)` });
    expect(existsSync(join(dir, "data.mdb"))).toBe(false);
    // A file (a state's data.mdb itself, say) is named as one: it said "the directory does not exist".
    const file = join(dir, "data.txt");
    writeFileSync(file, "not a state");
    for (const options of [{ create: false }, { readOnly: true }]) {
      expect(problem(() => Store.open(file, options))).toEqual({ problem: "missing", holder: undefined, message: `no state at ${file}: it is a file, not a directory (check --state: the state directory, not a file in it; nothing was changed)` });
    }
  });

  it("keeps a worker's partition state to its worker: writers without the changelog are refused (65), readers are not", async () => {
    const partition = join(dir, "users", "0");
    const worker = Store.open(partition, { capture: () => undefined });
    await worker.close();
    const message = `the state in ${partition} is a partition of a grouparoo-stream worker: only its worker writes it (its writes go to the partition's changelog); read it with status or dead-letters`;
    expect(problem(() => Store.open(partition, { lock: true }))).toEqual({ problem: "layout", holder: undefined, message });
    expect(problem(() => Store.open(partition, { create: false }))?.problem).toBe("layout");
    const reader = Store.open(partition, { readOnly: true });
    await reader.close();
    const again = Store.open(partition, { capture: () => undefined });
    await again.close();
    // The refused open released the lock it took.
    DaemonLock.acquire(partition).release();
  });

  it("refuses a worker's --state directory to every daemon command, naming its partitions' states, and creates nothing in it", async () => {
    // A worker's --state: its lock file, and a state per partition it owns under <model>/<partition>.
    const workerDir = join(dir, "worker");
    mkdirSync(workerDir);
    DaemonLock.acquire(workerDir).release();
    for (const partition of ["users/0", "users/3", "users/10", "accounts/1"]) {
      const store = Store.open(join(workerDir, partition), { capture: () => undefined });
      await store.close();
    }
    const shown = ["accounts/1", "users/0", "users/3"].map((p) => join(workerDir, p)).join(", ");
    const message = `the directory ${workerDir} is a grouparoo-stream worker's --state, not a daemon's state: each partition it owns has a state of its own under it (${shown}, ... (4 partitions)); status, runs and dead-letters read one of those (only the worker writes them) (nothing was changed)`;
    // run (lock), rebuild and retry-exports (create: false), status, runs and dead-letters (read-only):
    // before, run made a daemon's state in it and the others said it held no state.
    for (const options of [{ lock: true }, { create: false }, { readOnly: true }]) expect(problem(() => Store.open(workerDir, options))).toEqual({ problem: "layout", holder: undefined, message });
    expect(existsSync(join(workerDir, "data.mdb"))).toBe(false);
    // Its partitions open as before: read-only for the commands, with the changelog for the worker.
    const reader = Store.open(join(workerDir, "users", "3"), { readOnly: true });
    await reader.close();
    const owner = Store.open(join(workerDir, "users", "3"), { capture: () => undefined });
    await owner.close();
  });

  it("refuses a relay's state to every daemon command, changing nothing in it", async () => {
    const relayDir = join(dir, "relay");
    const relay = RelayState.open(relayDir);
    await relay.close();
    const message = `the state in ${relayDir} is a grouparoo-stream relay's state: only the relay opens it (nothing was changed); give a daemon's or a worker partition's --state`;
    for (const options of [{ lock: true }, { create: false }, { readOnly: true }]) expect(problem(() => Store.open(relayDir, options))).toEqual({ problem: "layout", holder: undefined, message });
    // Without the marker (a relay of an earlier version), a reader still says it is no daemon state.
    rmSync(join(relayDir, "relay.state"));
    expect(problem(() => Store.open(relayDir, { readOnly: true }))).toEqual({ problem: "layout", holder: undefined, message: `the directory ${relayDir} holds an LMDB environment that is not a grouparoo-stream state (nothing was changed)` });
  });

  it("maps its file once however far the state grows, so no page is resident twice, and readers share the one map", async () => {
    const state = join(dir, "state");
    const store = Store.open(state, { lock: true });
    const domain = coreDomain();
    // 20 MiB of records and unique values in batches: lmdb-js would otherwise map the file again at
    // each doubling (about eight maps by here), keeping the earlier ones.
    for (let batch = 0; batch < 20; batch++) {
      const users = Array.from({ length: 1_000 }, (_, i) => user(batch * 1_000 + i + 1, { email: `user${batch * 1_000 + i + 1}@example.com`, first_name: "x".repeat(800) }));
      await applyBatch(store, domain, users, T);
    }
    const reader = Store.open(state, { readOnly: true });
    expect(reader.getRecord("users", "20000")?.values.email).toBe("user20000@example.com");
    const maps = readFileSync("/proc/self/smaps", "utf8")
      .split("\n")
      .filter((line) => /^[0-9a-f]+-[0-9a-f]+ /.test(line) && line.endsWith(join(state, "data.mdb")));
    expect(statSync(join(state, "data.mdb")).size).toBeGreaterThan(20 * 2 ** 20);
    expect(maps).toHaveLength(1);
    await reader.close();
    await store.close();
  });

  it("names a file where the state directory should be (cannot create, 73)", () => {
    const file = join(dir, "file");
    writeFileSync(file, "x");
    expect(problem(() => Store.open(file, { lock: true }))).toEqual({ problem: "cannot-create", holder: undefined, message: `cannot open the state directory ${file}: it (or a parent of it) is a file, not a directory` });
    expect(problem(() => Store.open(join(file, "state"), { lock: true }))?.problem).toBe("cannot-create");
  });
});

describe("metrics that tell the truth (item 6) and what a state holds (items 3, 8)", () => {
  let dir: string;
  let store: Store;
  const domain = coreDomain([
    { class: "destination", id: "vip_hook", type: "webhook", appId: "hooks", modelId: "users", collection: "group", groupId: "vips", syncMode: "sync", options: {}, mapping: { id: "user_id" } },
  ]);
  const noGauges = { records: () => [], members: () => [], outboxDepth: () => [], runs: () => [], runProgress: () => [] };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "op-metrics-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("counts every group transition (one leaving and one entering in a batch are both counted) and planned exports by destination", async () => {
    const metrics = createMetrics(noGauges);
    const commit = async (changes: Parameters<typeof applyBatch>[2]) => {
      const result = await applyBatch(store, domain, changes, T);
      recordCommitted(metrics, { kind: "changes", changes: changes.length, positions: new Map(), commitTimes: new Map(), result, seconds: 0.001 });
    };
    await commit([user(1, { vip: true }), user(2, { vip: false })]);
    let text = await metrics.registry.metrics();
    expect(sample(text, 'grouparoo_group_transitions_total{group="vips",direction="enter"}')).toBe(1);
    expect(sample(text, 'grouparoo_group_transitions_total{group="vips",direction="leave"}')).toBeUndefined();
    // Both users are exported to crm (every record); only the vip to vip_hook.
    expect(sample(text, 'grouparoo_exports_planned_total{destination="crm"}')).toBe(2);
    expect(sample(text, 'grouparoo_exports_planned_total{destination="vip_hook"}')).toBe(1);

    // In one transaction user 1 leaves vips and user 2 enters: net zero, two transitions.
    await commit([change("users_table", "update", "1", { id: 1, vip: false }), change("users_table", "update", "2", { id: 2, vip: true })]);
    text = await metrics.registry.metrics();
    expect(sample(text, 'grouparoo_group_transitions_total{group="vips",direction="enter"}')).toBe(2);
    expect(sample(text, 'grouparoo_group_transitions_total{group="vips",direction="leave"}')).toBe(1);
    // Both users changed while their first exports are unsent: each is planned again (replacing the
    // unsent one, counted again); vip_hook gets user 2's create, and user 1's unsent create is dropped.
    expect(sample(text, 'grouparoo_exports_planned_total{destination="crm"}')).toBe(4);
    expect(store.outboxDepth("crm")).toBe(2);
    expect(sample(text, 'grouparoo_exports_planned_total{destination="vip_hook"}')).toBe(2);
    expect(store.outboxDepth("vip_hook")).toBe(1);
  });

  it("reports the build: grouparoo_build_info{version,node} 1, with the state's layout where there is one", async () => {
    const metrics = createMetrics(noGauges, { version: "1.2.3", node: "v20.19.0" });
    expect(sample(await metrics.registry.metrics(), 'grouparoo_build_info{version="1.2.3",node="v20.19.0"}')).toBe(1);
    const daemon = createMetrics(noGauges, { version: "1.2.3", node: "v20.19.0", layout: 4 });
    expect(sample(await daemon.registry.metrics(), 'grouparoo_build_info{version="1.2.3",node="v20.19.0",layout="4"}')).toBe(1);
  });

  it("summarises the state and lists dead letters with their reasons, read-only", async () => {
    await applyBatch(store, domain, [user(1, { email: "ada@example.com" }), change("users_table", "insert", "", { id: 9 }), { ...user(3), position: { stream: "postgres:db", position: "0/1E59C90" } }], T);
    const reader = Store.open(dir, { readOnly: true });
    try {
      const status = stateStatus(reader);
      expect(status.positions).toContainEqual({ stream: "postgres:db", position: "0/1E59C90" });
      expect(status.deadLetters).toEqual({ change: 1, message: 0, export: 0 });
      // No stored definitions here (as in a worker's partition): what the state counts and queues.
      expect({ records: status.records, groups: status.groups, outbox: status.outbox }).toEqual({
        records: [{ model: "users", count: 2 }],
        groups: [
          { group: "example_emails", members: 1 },
          { group: "never_a", members: 2 },
          { group: "no_email", members: 1 },
        ],
        outbox: [{ destination: "crm", depth: 2 }],
      });
      const letters = deadLetters(reader, { kind: "change" });
      expect(letters).toMatchObject([{ seq: 1, kind: "change", component: "users_table", reason: "the change has no row key", position: expect.stringMatching(/^db \d+$/) as string }]);
      expect(deadLetters(reader, { kind: "export" })).toEqual([]);
    } finally {
      await reader.close();
    }
  });
});
