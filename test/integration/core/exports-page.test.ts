// GET /api/v1/exports?state=retrying pages: like the other pages that filter (members of a group,
// dead letters of a kind), one reads at most 20,000 exports (README, "Paging"), so a page may hold
// fewer than its limit and only a null nextCursor means the end; it read the whole outbox (up to
// --outbox-bound, 100,000 by default) for each page before. Following the cursors finds every
// retrying export once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExportPlan } from "../../../core/exports.js";
import { Store } from "../../../state/store.js";
import { exportsPage, SCAN_PER_PAGE } from "../../../streams/inspect.js";

const plan = (recordId: string): ExportPlan => ({ destinationId: "crm", recordId, oldRecordProperties: {}, newRecordProperties: { id: recordId }, oldGroups: [], newGroups: [], toDelete: false, updateOnly: false, commitTime: 0 });

describe("a page of retrying exports", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "exports-page-"));
    store = Store.open(dir, { lock: true });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads at most 20,000 exports, and the cursors lead to every retrying one, once", async () => {
    const total = SCAN_PER_PAGE + 5000;
    for (let from = 0; from < total; from += 5000) {
      await store.transact((tx) => {
        for (let i = from; i < from + 5000; i++) tx.putExport("crm", String(i + 1), plan(String(i + 1)), null);
      });
    }
    // Two of them failed once and wait for their retry: seq 3 and the last.
    const outbox = store.outboxFor("crm");
    const failing = outbox.pending(total, Date.now(), new Set(), new Set()).filter((e) => e.seq === 3 || e.seq === total);
    expect(failing).toHaveLength(2);
    await outbox.markSending(failing);
    await outbox.complete(failing.map((entry) => ({ entry, status: "error" as const, message: "503", retryAt: Date.now() + 3_600_000 })));

    const first = exportsPage(store, "crm", "retrying", undefined, 100);
    expect(first.exports.map((e) => e.seq)).toEqual([3]);
    expect(first.more).toBe(true);
    expect(first.last).toBe(SCAN_PER_PAGE);
    const second = exportsPage(store, "crm", "retrying", first.last, 100);
    expect(second.exports.map((e) => e.seq)).toEqual([total]);
    expect(second.more).toBe(false);

    // Unfiltered pages are full, and their cursor is their last export.
    const queued = exportsPage(store, "crm", "queued", undefined, 2);
    expect(queued.exports.map((e) => e.seq)).toEqual([1, 2]);
    expect(queued.last).toBe(2);
    expect(queued.more).toBe(true);
    const end = exportsPage(store, "crm", "queued", total - 2, 5);
    expect(end.exports.map((e) => e.seq)).toEqual([total - 1, total]);
    expect(end.more).toBe(false);
    // A retrying page of one, full: the next starts after it.
    const one = exportsPage(store, "crm", "retrying", undefined, 1);
    expect(one.exports.map((e) => e.seq)).toEqual([3]);
    expect(one.last).toBe(3);
    expect(one.more).toBe(true);
  });
});
