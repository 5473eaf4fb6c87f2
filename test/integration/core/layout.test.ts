// The state's key layout 4 on real LMDB: ids that are canonical integers stand in keys as numbers
// (so serial ids append to the B-tree), every reader gets the text back, a layout 3 state is upgraded
// in place to exactly what layout 4 writes, and a partition's changelog carries ids as text.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CapturedTransaction } from "../../../core/partitions.js";
import { STATE_FORMAT, Store, UPGRADE_CHUNK, idKey } from "../../../state/store.js";
import { applyBatch, sweep } from "../../../streams/batch.js";
import { DAY, change, coreDomain, generateChanges, purchase, user } from "../../helpers/core.js";
import { IDS, asLayout3, dumpLmdb as dump } from "../../helpers/layout.js";

const T = Date.UTC(2026, 10, 1, 12, 0, 0);
const domain = coreDomain();

describe("ids in keys", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "layout-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("are numbers exactly for canonical integer text, which String() gives back", () => {
    for (const [id, stored] of [
      ["0", 0],
      ["7", 7],
      ["-7", -7],
      ["123456789012345", 123456789012345],
      ["1234567890123456", "1234567890123456"],
      ["-0", "-0"],
      ["007", "007"],
      ["+7", "+7"],
      ["7.0", "7.0"],
      ["1e3", "1e3"],
      ["", ""],
      ["-", "-"],
      [" 7", " 7"],
      ["abc", "abc"],
    ] as const) {
      expect(idKey(id), id).toBe(stored);
      expect(String(idKey(id))).toBe(id);
    }
  });

  it("order integer ids by value before text ids, in every listing and page, and read back as text", async () => {
    // An id starting outside the Basic Multilingual Plane (an emoji) sorts last, inside every range.
    const ids = ["10", "2", "abc", "007", "-3", "100000", "10001", "\u{1F600}x"];
    await applyBatch(store, domain, ids.map((id, i) => change("users_table", "insert", id, { id: i + 1, first_name: "Ada", vip: true })), T);
    const order = ["-3", "2", "10", "10001", "100000", "007", "abc", "\u{1F600}x"];
    expect(store.recordIdsOf("users", undefined, 100)).toEqual(order);
    expect([...store.recordsOf("users")].map((r) => r.id)).toEqual(order);
    expect(store.membersOf("users", "vips")).toEqual(order);
    expect(store.recordIdsOf("users", "10", 2)).toEqual(["10001", "100000"]);
    expect(store.recordIdsOf("users", "100000", 10)).toEqual(["007", "abc", "\u{1F600}x"]);
    expect(store.membersAfter("users", "vips", "2", 2, 10)).toEqual({ ids: ["10", "10001"], last: "10001", more: true });
    expect(store.recordsAfter("users", "007", 10).map((r) => r.id)).toEqual(["abc", "\u{1F600}x"]);
    expect(store.countOf("records", "users")).toBe(ids.length);
    expect(store.getRecord("users", "007")?.values.user_id).toBe(4);
    expect(store.getRecord("users", "7")).toBeUndefined();
    expect(store.rowKeysOf("users_table", undefined, 100)).toEqual([]);
    // The unique index of an integer property holds its values as numbers and finds the records.
    expect(store.recordIdByUnique("users", "user_id", "4")).toBe("007");
    const raw = await dump(dir);
    expect(raw.filter(([name]) => name === "records").map(([, key]) => key)).toEqual([
      ["users", -3],
      ["users", 2],
      ["users", 10],
      ["users", 10001],
      ["users", 100000],
      ["users", "007"],
      ["users", "abc"],
      ["users", "\u{1F600}x"],
    ]);
  });

  it("of rows, attached rows and rows waiting for their record are numbers too, and found again", async () => {
    await applyBatch(store, domain, [purchase(1001, { user_id: 5, amount: 10, state: "paid", sku: "A", created_at: new Date(T - DAY) })], T);
    await applyBatch(store, domain, [user(5, { vip: false })], T);
    await applyBatch(store, domain, [purchase(1002, { user_id: 5, amount: 20, state: "paid", sku: "B", created_at: new Date(T) })], T);
    expect(store.getRecord("users", "5")?.values.purchase_count).toBe(2);
    expect(store.rowKeysOf("purchases_table", undefined, 10)).toEqual(["1001", "1002"]);
    expect(store.rowOf("purchases_table", "1001")?.recordId).toBe("5");
    const raw = await dump(dir);
    expect(raw.filter(([name]) => name === "attached").map(([, key]) => key)).toEqual([
      ["users", 5, "purchases_table", 1001],
      ["users", 5, "purchases_table", 1002],
    ]);
    expect(raw.filter(([name]) => name === "pending")).toEqual([]);
    expect(raw.filter(([name]) => name === "time-index").map(([, key]) => (key as unknown[])[3])).toEqual([5]);
    expect(store.dueBoundaries(T + 10 * DAY).map((b) => b.recordId)).toEqual(["5"]);
  });
});

describe("a layout 3 state", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "layout3-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A state with records, unique values, attached and waiting rows, a time index and an outbox. */
  async function build(): Promise<void> {
    const store = Store.open(dir);
    const changes = generateChanges(11, 600, 40, 150);
    for (let i = 0; i < changes.length; i += 50) await applyBatch(store, domain, changes.slice(i, i + 50), T);
    // Rows waiting for a record that never came.
    await applyBatch(store, domain, [purchase(5000, { user_id: 999, amount: 1, state: "paid", sku: "A", created_at: new Date(T) })], T);
    await sweep(store, domain, T + DAY);
    await store.putMeta("run:r1", { id: "r1", kind: "backfill", state: "running", phase: 0, cursor: "17", processed: 38 });
    await store.putMeta("run:r2", { id: "r2", kind: "reread", state: "running", phase: 0, cursor: "0/16B3748" });
    await store.putMeta("run:r3", { id: "r3", kind: "backfill", state: "complete", phase: 0, cursor: "40", processed: 40 });
    await store.close();
  }

  it("is upgraded when the daemon opens it to exactly the entries layout 4 writes", async () => {
    await build();
    const written = await dump(dir);
    const kinds = new Set(written.map(([name]) => name));
    for (const name of ["records", "unique", "rows", "attached", "pending", "time-index", "outbox", "outbox-by-record"]) expect(kinds, name).toContain(name);
    const rewritten = await asLayout3(dir);
    expect(rewritten).toBeGreaterThan(300);
    expect(await dump(dir)).not.toEqual(written);

    const store = Store.open(dir, { lock: true });
    try {
      expect(store.getMeta("format")).toBe(STATE_FORMAT);
      expect(store.getMeta("upgrading-from")).toBeUndefined();
      expect(store.upgraded).toMatchObject({ from: 3, keys: rewritten });
      expect(await dump(dir)).toEqual(written);
      // A Run paging by id starts its phase again (the order changed); a re-read keeps its position.
      expect(store.getMeta("run:r1")).toEqual({ id: "r1", kind: "backfill", state: "running", phase: 0, processed: 0 });
      expect(store.getMeta("run:r2")).toEqual({ id: "r2", kind: "reread", state: "running", phase: 0, cursor: "0/16B3748" });
      // A Run that ended keeps what it did.
      expect(store.getMeta("run:r3")).toEqual({ id: "r3", kind: "backfill", state: "complete", phase: 0, cursor: "40", processed: 40 });
    } finally {
      await store.close();
    }
  });

  it("is upgraded a chunk at a time, yielding between chunks, and refuses writes until it is", async () => {
    await build();
    const written = await dump(dir);
    const rewritten = await asLayout3(dir);
    const chunk = UPGRADE_CHUNK.keys;
    UPGRADE_CHUNK.keys = 7;
    try {
      const store = Store.open(dir, { lock: true, deferUpgrade: true });
      expect(store.needsUpgrade).toBe(true);
      await expect(store.putMeta("x", 1)).rejects.toThrow("the state's upgrade from layout 3 to layout 4 has not run");
      const total = store.upgradeKeyCount();
      const steps: { rewritten: number; scanned: number }[] = [];
      let turns = 0;
      const ticking = setInterval(() => (turns += 1), 0);
      await store.upgrade((step) => steps.push(step));
      clearInterval(ticking);
      expect(store.needsUpgrade).toBe(false);
      // A step after every chunk read, whether it moved keys or not.
      expect(steps.length).toBeGreaterThanOrEqual(Math.ceil(total / 7));
      expect(steps.at(-1)?.rewritten).toBe(rewritten);
      expect(steps.at(-1)?.scanned).toBeGreaterThanOrEqual(total);
      expect(steps.map((x) => x.scanned)).toEqual(steps.map((x) => x.scanned).sort((a, b) => a - b));
      expect(turns).toBeGreaterThan(0);
      await store.close();
    } finally {
      UPGRADE_CHUNK.keys = chunk;
    }
    expect(await dump(dir)).toEqual(written);
  });

  it("upgraded part-way (a stop during the upgrade) is refused by the older layout and finished by the next start", async () => {
    await build();
    const written = await dump(dir);
    await asLayout3(dir, 0.5, true);
    expect(() => Store.open(dir, { readOnly: true })).toThrow(`the state in ${dir} is being upgraded from layout 3 to layout ${STATE_FORMAT}, or its upgrade stopped part-way`);
    // A stop during the upgrade (here from its progress callback) leaves the marker; the next start finishes.
    const stopped = Store.open(dir, { lock: true, deferUpgrade: true });
    let steps = 0;
    await expect(
      stopped.upgrade(() => {
        if (++steps === 2) throw new Error("stop");
      }),
    ).rejects.toThrow("stop");
    await stopped.close();
    const store = Store.open(dir, { lock: true });
    expect(store.getMeta("upgrading-from")).toBeUndefined();
    await store.close();
    expect(await dump(dir)).toEqual(written);
  });

  it("is upgraded by its owner only: read-only commands and commands beside a daemon refuse it, changing nothing", async () => {
    await build();
    await asLayout3(dir);
    const before = await dump(dir);
    const says = `the state in ${dir} has layout 3, which this version upgrades to layout ${STATE_FORMAT} when the daemon (run) or a worker starts on it`;
    expect(() => Store.open(dir, { readOnly: true })).toThrow(says);
    expect(() => Store.open(dir, { create: false })).toThrow(says);
    expect(await dump(dir)).toEqual(before);
    // A worker's partition is its worker's to upgrade.
    const partition = Store.open(dir, { capture: () => undefined });
    expect(partition.upgraded?.from).toBe(3);
    await partition.close();
  });
});

describe("a partition's changelog", () => {
  it("carries ids as text, and a restore stores them as numbers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "layout-changelog-"));
    const restored = mkdtempSync(join(tmpdir(), "layout-restored-"));
    try {
      const captured: CapturedTransaction[] = [];
      const store = Store.open(dir, { capture: (t) => captured.push(t) });
      await applyBatch(store, domain, [user(5, { email: "a@example.com" }), purchase(1001, { user_id: 5, amount: 10, state: "paid", sku: "A", created_at: new Date(T) })], T);
      await store.close();
      const keys = captured.flatMap((t) => t.records.map((r) => r.key.toString("utf8")));
      expect(keys).toContain(JSON.stringify(["records", ["users", "5"]]));
      expect(keys).toContain(JSON.stringify(["unique", ["users", "user_id", "5"]]));
      expect(keys).toContain(JSON.stringify(["attached", ["users", "5", "purchases_table", "1001"]]));
      const numericIds = keys
        .map((k) => JSON.parse(k) as [string, unknown])
        .filter(([name, key]) => Array.isArray(key) && (IDS[name] ?? []).some((i) => typeof key[i] !== "string"));
      expect(numericIds).toEqual([]);

      const restore = Store.open(restored, { capture: () => undefined });
      await restore.applyChangelog(captured.flatMap((t) => t.records));
      expect(restore.getRecord("users", "5")?.values.purchase_count).toBe(1);
      expect(restore.recordIdByUnique("users", "email", "a@example.com")).toBe("5");
      await restore.close();
      expect(await dump(restored)).toEqual(await dump(dir));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(restored, { recursive: true, force: true });
    }
  });

  it("a restore cut short names no transaction, so it is not kept; a complete one names the last", async () => {
    const dir = mkdtempSync(join(tmpdir(), "layout-changelog-"));
    const cut = mkdtempSync(join(tmpdir(), "layout-cut-"));
    const whole = mkdtempSync(join(tmpdir(), "layout-whole-"));
    try {
      const captured: CapturedTransaction[] = [];
      const store = Store.open(dir, { capture: (t) => captured.push(t) });
      await applyBatch(store, domain, [user(5, { email: "a@example.com" })], T);
      await applyBatch(store, domain, [user(6, { email: "b@example.com" }), purchase(1001, { user_id: 6, amount: 10, state: "paid", sku: "A", created_at: new Date(T) })], T);
      await store.close();
      const [, last] = captured;
      if (!last) throw new Error("two transactions");
      // One Kafka transaction of both, folded as a worker folds them (each key at its first write's place):
      // the last transaction's id comes before the records of user 6.
      const byKey = new Map<string, { key: Buffer; value: Buffer | null }>();
      for (const t of captured) for (const r of t.records) byKey.set(r.key.toString("latin1"), r);
      const records = [...byKey.values()];
      const at = records.findIndex((r) => r.key.toString("utf8") === JSON.stringify(["meta", "changelog:txn"]));
      expect(at).toBeGreaterThan(0);
      expect(at).toBeLessThan(records.length - 1);

      // Cut right after the id (the partition given up, or the worker killed, mid-restore).
      const partial = Store.open(cut, { capture: () => undefined });
      await partial.applyChangelog(records.slice(0, at + 1), { holdTransaction: true });
      await partial.close();
      const reopened = Store.open(cut, { capture: () => undefined });
      expect({ transaction: reopened.changelogTransaction(), user6: reopened.getRecord("users", "6") !== undefined }).toEqual({ transaction: undefined, user6: false });
      await reopened.close();

      // In two batches, then complete: the copy equals the state and names its last transaction.
      const restore = Store.open(whole, { capture: () => undefined });
      await restore.applyChangelog(records.slice(0, at + 1), { holdTransaction: true });
      expect(restore.changelogTransaction()).toBeUndefined();
      await restore.applyChangelog(records.slice(at + 1), { holdTransaction: true });
      await restore.completeRestore();
      expect(restore.changelogTransaction()).toBe(last.id);
      await restore.close();
      expect(await dump(whole)).toEqual(await dump(dir));
    } finally {
      for (const d of [dir, cut, whole]) rmSync(d, { recursive: true, force: true });
    }
  });
});
