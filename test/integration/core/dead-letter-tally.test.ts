// The dead letters' counts (GET /api/v1/status, the status page every 5 s, `status --state`, the
// dead-letters API's component check): exact after letters are added and removed, by this store or
// beside it, and brought up to date by reading the letters added since, not every letter the state
// holds each time. The status is answered on the daemon's thread: decoding 200,000 letters of a flood
// of undecodable messages took 2.4 s there per request, the pipeline stopped meanwhile.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { DeadLetter } from "../../../core/apply.js";
import { Store, type StateTransaction } from "../../../state/store.js";
import { deadLetters, stateStatus } from "../../../streams/inspect.js";

const message = (sourceId: string, n: number): DeadLetter => ({
  kind: "message",
  sourceId,
  reason: "undecodable: unexpected token",
  change: { sourceId, op: "marker", key: "", before: null, after: null, position: { stream: `kafka:k:${sourceId}:0`, position: String(n) }, commitTime: 0, deadLetter: { reason: "undecodable", payload: "{" } },
});
const change = (sourceId: string, n: number): DeadLetter => ({
  kind: "change",
  sourceId,
  reason: "no row key",
  change: { sourceId, op: "insert", key: "", before: null, after: { n }, position: { stream: `postgres:${sourceId}`, position: String(n) }, commitTime: 0 },
});

/** Counts the dead letters a store decodes (its sub-database's getRange values). */
function countReads(store: Store): { read: number } {
  const counter = { read: 0 };
  const db = (store as unknown as { deadLetters: { getRange: (options?: object) => Iterable<unknown> } }).deadLetters;
  const original = db.getRange.bind(db);
  db.getRange = (options?: object) => {
    const range = original(options);
    // A count of keys (getKeysCount) goes through getRange too, reading no value.
    if ((options as { onlyCount?: boolean } | undefined)?.onlyCount) return range;
    return {
      *[Symbol.iterator]() {
        for (const entry of range) {
          counter.read += 1;
          yield entry;
        }
      },
    };
  };
  return counter;
}

const sorted = <T extends { kind: string; component: string }>(list: T[]) => [...list].sort((a, b) => `${a.kind}${a.component}`.localeCompare(`${b.kind}${b.component}`));

describe("the dead letters' tally", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "letter-tally-"));
    store = Store.open(dir, { lock: true });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const add = (letters: DeadLetter[]) => store.transact((tx: StateTransaction) => letters.forEach((l) => tx.deadLetter(l)));

  it("counts by kind and component, reading only the letters added since the last count", async () => {
    await add(Array.from({ length: 2000 }, (_, i) => message("events", i)));
    await add([change("users_table", 1), change("users_table", 2)]);
    expect(stateStatus(store).deadLetters).toEqual({ change: 2, message: 2000, export: 0 });

    const reads = countReads(store);
    expect(stateStatus(store).deadLetters).toEqual({ change: 2, message: 2000, export: 0 });
    expect(reads.read).toBe(0);
    await add([message("events", 2001), message("orders", 1), change("users_table", 3)]);
    expect(stateStatus(store).deadLetters).toEqual({ change: 3, message: 2002, export: 0 });
    expect(sorted(store.deadLetterTally())).toEqual([
      { kind: "change", component: "users_table", count: 3 },
      { kind: "message", component: "events", count: 2001 },
      { kind: "message", component: "orders", count: 1 },
    ]);
    expect(reads.read).toBe(3);
    expect(store.hasDeadLettersOf("orders")).toBe(true);
    expect(store.hasDeadLettersOf("nope")).toBe(false);
    expect(reads.read).toBe(3);
  });

  it("stays exact when letters are removed, the newest or older ones, with letters added meanwhile", async () => {
    await add(Array.from({ length: 10 }, (_, i) => message("events", i)));
    await add([change("users_table", 1)]);
    expect(stateStatus(store).deadLetters).toEqual({ change: 1, message: 10, export: 0 });
    // The newest (seq 11, the change) removed.
    await store.transact((tx) => tx.deleteDeadLetter(11));
    expect(stateStatus(store).deadLetters).toEqual({ change: 0, message: 10, export: 0 });
    // An older one removed and a newer one added in the same transaction.
    await store.transact((tx) => {
      tx.deleteDeadLetter(3);
      tx.deadLetter(change("users_table", 2));
    });
    expect(stateStatus(store).deadLetters).toEqual({ change: 1, message: 9, export: 0 });
    expect(sorted(store.deadLetterTally())).toEqual([
      { kind: "change", component: "users_table", count: 1 },
      { kind: "message", component: "events", count: 9 },
    ]);
    // All of them removed, then one more.
    await store.transact((tx) => {
      for (const seq of [1, 2, 4, 5, 6, 7, 8, 9, 10, 12]) tx.deleteDeadLetter(seq);
    });
    expect(store.deadLetterTally()).toEqual([]);
    expect(store.hasDeadLettersOf("events")).toBe(false);
    await add([message("events", 99)]);
    expect(store.deadLetterTally()).toEqual([{ kind: "message", component: "events", count: 1 }]);
  });

  it("lists the first letters of a kind (`dead-letters --limit N`) reading no further than they are", async () => {
    await add([change("users_table", 1), ...Array.from({ length: 5000 }, (_, i) => message("events", i)), change("users_table", 2), change("users_table", 3)]);
    const reads = countReads(store);
    expect(deadLetters(store, { kind: "message", limit: 2 }).map((l) => [l.seq, l.kind])).toEqual([
      [2, "message"],
      [3, "message"],
    ]);
    expect(reads.read).toBeLessThanOrEqual(4);
    // `change` takes the changes and the messages of sources.
    expect(deadLetters(store, { kind: "change", limit: 3 }).map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(deadLetters(store, { kind: "change" })).toHaveLength(5003);
    expect(deadLetters(store, { kind: "export" })).toEqual([]);
    expect(deadLetters(store, { limit: 1 }).map((l) => l.seq)).toEqual([1]);
  });

  it("sees what another process's store wrote (a read-only store beside the daemon's)", async () => {
    const reader = Store.open(dir, { readOnly: true });
    // A reader sees a write once its read snapshot is renewed (lmdb-js renews it between turns of the
    // event loop; on a busy machine a turn or two later): what it counts is the snapshot's, whole.
    const eventually = async <T>(read: () => T, expected: T) => vi.waitFor(() => expect(read()).toEqual(expected), { timeout: 2_000, interval: 10 });
    try {
      expect(reader.deadLetterTally()).toEqual([]);
      await add([message("events", 1), message("events", 2)]);
      await eventually(() => reader.deadLetterTally(), [{ kind: "message", component: "events", count: 2 }]);
      await store.transact((tx) => tx.deleteDeadLetter(1));
      await eventually(() => reader.deadLetterTally(), [{ kind: "message", component: "events", count: 1 }]);
      expect(stateStatus(reader).deadLetters).toEqual({ change: 0, message: 1, export: 0 });
    } finally {
      await reader.close();
    }
  });
});
