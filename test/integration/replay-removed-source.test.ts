// Replaying a dead letter whose component the config no longer has. An export of a removed destination
// was skipped (it stays, with why); a change of a removed source was applied again, and set aside
// again at once ("no source ... in the config"): its seq changed, the reason it was set aside for was
// replaced, and the replay counted it as a change applied, so `POST /dead-letters/replay {"all": true}`
// repeated "for more" never came to an end. Now it is skipped the same way, and stays as it was.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store } from "../../state/store.js";
import { deadLetters } from "../../streams/inspect.js";
import { replayDeadLetters, unreplayable } from "../../streams/operations.js";
import { change, coreDomain } from "../helpers/core.js";

describe("replaying a dead letter of a removed component", () => {
  let dir: string;
  beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), "replay-removed-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("skips a change of a source the config no longer has, which stays as it was; one of a source it has is applied", async () => {
    const domain = coreDomain();
    const store = Store.open(join(dir, "state"));
    try {
      await store.transact((tx) => {
        tx.deadLetter({ kind: "change", sourceId: "old_table", reason: "the change has no row key", change: change("old_table", "insert", "", { id: 1 }) });
        tx.deadLetter({ kind: "change", sourceId: "users_table", reason: "set aside by the test", change: change("users_table", "insert", "5", { id: 5, email: "five@example.com" }) });
      });
      const letters = [1, 2].map((seq) => store.deadLetterOf(seq));
      const [old, users] = letters;
      if (!old || !users) throw new Error("the letters were not stored");
      expect(unreplayable(old, domain)).toBe('source "old_table" is not in the config');
      expect(unreplayable(users, domain)).toBeNull();

      const outcome = await replayDeadLetters(store, domain, [old, users]);
      expect({ changes: outcome.changes, exports: outcome.exports, skipped: outcome.skipped }).toEqual({ changes: 1, exports: {}, skipped: [{ seq: 1, reason: 'source "old_table" is not in the config' }] });
      // The removed source's letter as it was (seq, reason); the other applied and gone.
      expect(deadLetters(store).map((l) => [l.seq, l.component, l.reason])).toEqual([[1, "old_table", "the change has no row key"]]);
      expect(store.getRecord("users", "5")?.values.email).toBe("five@example.com");
    } finally {
      await store.close();
    }
  });

  it("counts the changes that fail again apart, so a script repeating replay-all knows when only those are left", async () => {
    const domain = coreDomain();
    const store = Store.open(join(dir, "state"));
    try {
      await store.transact((tx) => {
        tx.deadLetter({ kind: "change", sourceId: "users_table", reason: "the change has no row key", change: change("users_table", "insert", "", { id: 6 }) });
        tx.deadLetter({ kind: "change", sourceId: "users_table", reason: "set aside by the test", change: change("users_table", "insert", "7", { id: 7, email: "seven@example.com" }) });
      });
      const letters = [1, 2].map((seq) => store.deadLetterOf(seq)).filter((l) => l !== undefined);
      const first = await replayDeadLetters(store, domain, letters);
      expect({ changes: first.changes, failedAgain: first.failedAgain, skipped: first.skipped }).toEqual({ changes: 2, failedAgain: 1, skipped: [] });
      // The one that failed again is a new letter at the back; replayed again it fails again, alone.
      expect(deadLetters(store).map((l) => l.seq)).toEqual([3]);
      const again = await replayDeadLetters(store, domain, [store.deadLetterOf(3)].filter((l) => l !== undefined));
      expect({ changes: again.changes, failedAgain: again.failedAgain }).toEqual({ changes: 1, failedAgain: 1 });
      expect(store.getRecord("users", "7")?.values.email).toBe("seven@example.com");
    } finally {
      await store.close();
    }
  });
});
