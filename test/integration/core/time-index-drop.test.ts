// Dropping a model's (or a group's) time-index entries a chunk at a time, on real LMDB: each call
// resumes after the last entry the previous one dropped (the index is ordered by instant, so a scan
// from the start would skip the other models' entries again at every chunk), and it says none are
// left only once a scan from the start finds fewer than its limit, so an entry put behind the point
// it resumes from is dropped too.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store } from "../../../state/store.js";

describe("dropping time-index entries in chunks", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "time-index-drop-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Record i of models m and other, in groups g1 and g2, due at interleaved instants. */
  const put = (entries: [model: string, group: string, record: number, instant: number][]) =>
    store.transact((tx) => {
      for (const [m, g, r, at] of entries) tx.setBoundary(m, g, String(r), undefined, at);
    });
  const entries = () => store.dueBoundaries(Number.MAX_SAFE_INTEGER).map((e) => `${e.modelId}/${e.groupId}/${e.recordId}@${e.instant}`);
  const dropChunk = (modelId: string, groupId: string | undefined, limit: number) => store.transact((tx) => tx.dropTimeIndex(modelId, groupId, limit));

  it("drops one model's entries, the limit at a time, and none of another model's", async () => {
    await put(Array.from({ length: 10 }, (_, i): [string, string, number, number][] => [["other", "g1", i, 1000 + 2 * i], ["m", "g1", i, 1001 + 2 * i]]).flat());
    const counts: number[] = [];
    for (;;) {
      counts.push(await dropChunk("m", undefined, 3));
      if ((counts.at(-1) as number) < 3) break;
    }
    expect(counts).toEqual([3, 3, 3, 1]);
    expect(entries()).toEqual(Array.from({ length: 10 }, (_, i) => `other/g1/${i}@${1000 + 2 * i}`));
  });

  it("drops an entry put behind the point it resumes from before it reports none left", async () => {
    await put(Array.from({ length: 6 }, (_, i): [string, string, number, number] => ["m", "g1", i, 2000 + i]));
    expect(await dropChunk("m", undefined, 4)).toBe(4);
    await put([["m", "g1", 100, 1500], ["other", "g1", 101, 1501]]);
    // The rest after the resume point (2), then the one behind it, found by a scan from the start.
    expect(await dropChunk("m", undefined, 4)).toBe(3);
    expect(entries()).toEqual(["other/g1/101@1501"]);
    expect(await dropChunk("m", undefined, 4)).toBe(0);
  });

  it("drops one group's entries of a model and keeps its other groups'", async () => {
    await put(Array.from({ length: 5 }, (_, i): [string, string, number, number][] => [["m", "g1", i, 3000 + 2 * i], ["m", "g2", i, 3001 + 2 * i]]).flat());
    expect(await dropChunk("m", "g1", 2)).toBe(2);
    expect(await dropChunk("m", "g1", 2)).toBe(2);
    expect(await dropChunk("m", "g1", 2)).toBe(1);
    expect(entries()).toEqual(Array.from({ length: 5 }, (_, i) => `m/g2/${i}@${3001 + 2 * i}`));
  });
});
