// Layout 3 states for tests of the upgrade to layout 4, written from a layout 4 state straight
// through LMDB: every id in a key back to text, as layout 3 stored it.
import { open, type RootDatabase } from "lmdb";
import { STATE_FORMAT } from "../../state/store.js";

/** Where ids stand in each sub-database's keys, restated here (layout 4 converts exactly these). */
export const IDS: Record<string, number[]> = {
  records: [1],
  unique: [2],
  rows: [1],
  attached: [1, 3],
  pending: [2, 4],
  "time-index": [3],
  remote: [1],
  "export-results": [1],
  "outbox-by-record": [1],
};
const STRUCTURED = new Set(["records", "rows", "remote", "outbox"]);
const NAMES = [...Object.keys(IDS), "outbox", "dead-letters", "counters"];

const subDatabase = (root: RootDatabase, name: string) => root.openDB<unknown, (string | number)[]>({ name, ...(STRUCTURED.has(name) ? { sharedStructuresKey: Symbol.for("structures") } : {}) });

/** Every entry of the sub-databases that hold ids, as [name, key, value], read straight from LMDB. */
export async function dumpLmdb(dir: string): Promise<[string, unknown, unknown][]> {
  const root = open({ path: dir, maxDbs: 32 });
  const out: [string, unknown, unknown][] = [];
  for (const name of NAMES) {
    for (const { key, value } of subDatabase(root, name).getRange()) if (Array.isArray(key)) out.push([name, key, value]);
  }
  await root.close();
  return out;
}

/**
 * Rewrites a layout 4 state as layout 3 wrote it: ids as text in every key. `share` (0 to 1) of each
 * sub-database's entries is rewritten, the rest left as they are, and the layout stamped as an upgrade
 * stopped part-way leaves it (`stopped`).
 */
export async function asLayout3(dir: string, share = 1, stopped = false): Promise<number> {
  const root = open({ path: dir, maxDbs: 32 });
  let rewritten = 0;
  await root.transaction(() => {
    for (const [name, positions] of Object.entries(IDS)) {
      const db = subDatabase(root, name);
      const entries = [...db.getRange()].filter(({ key }) => Array.isArray(key) && positions.some((i) => typeof key[i] === "number"));
      for (const { key, value } of entries.slice(0, Math.ceil(entries.length * share))) {
        const text = key.map((part, i) => (positions.includes(i) && typeof part === "number" ? String(part) : part));
        void db.remove(key);
        void db.put(text, value);
        rewritten += 1;
      }
    }
    const meta = root.openDB({ name: "meta" });
    void meta.put("format", stopped ? STATE_FORMAT : 3);
    if (stopped) void meta.put("upgrading-from", 3);
  });
  await root.close();
  return rewritten;
}

