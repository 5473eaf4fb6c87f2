// A primary source replaced (its id kept, another table) while its new table streams: the remove-source
// Run deletes the old records 500 a chunk, and a batch of changes goes in between chunks. Each chunk
// used to start again from the model's first record, and the Run ended only when a chunk found none:
// a record the stream made under the new table (a user inserted or changed there) between every two
// chunks kept it deleting them, one chunk after another, for as long as the writes went on (a
// livelock). It now goes through the records once, in key order: a record made behind it was made
// under the new definition and stays (the re-read that follows reads the table whole anyway). Real
// LMDB, the Runs stepped as the pipeline steps them; compared with a fresh state on the new config.
import { describe, expect, it } from "vitest";
import { applyBatch } from "../../../streams/batch.js";
import { listRuns } from "../../../streams/runs.js";
import { dumpDifferences } from "../../helpers/converge.js";
import { user } from "../../helpers/core.js";
import { A, chunkedRereader, compiled, dumpUsers as dump, replace, runner, T, undoneStates, userRow, USER_TABLES, usersTableRows, USERS, type Obj } from "../../helpers/undone.js";

const moved = (): Obj[] => replace(A(), "users_table", (o) => ({ ...o, options: { ...(o.options as Obj), table: "users2" } }));

describe("a primary source replaced while its new table streams", () => {
  const { built } = undoneStates("remove-primary-streaming-");

  it("the remove-source Run ends while a user of the new table streams in between every two chunks", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    const { domain, definitions } = compiled(moved());
    // Between chunks: a user of users2 changed (one the removal already deleted: 1, 2, 3, ...).
    let between = 0;
    let removedAfter: number | undefined;
    const streamed: number[] = [];
    const { runs, stopped } = runner(store, domain, {
      connector: chunkedRereader(store, moved(), usersTableRows(moved())),
      between: async () => {
        between += 1;
        const removal = listRuns(store).find((r) => r.kind === "remove-source");
        if (removedAfter === undefined && removal?.state === "complete") removedAfter = between;
        if (removedAfter === undefined) {
          streamed.push(between);
          await applyBatch(store, domain, [user(between, { ...userRow(between), first_name: "streamed" }, T)], T);
        }
      },
      stopWhen: () => between >= 200 || listRuns(store).every((r) => r.state === "complete"),
    });
    await runs.start(definitions, () => true, false);
    await Promise.race([stopped, runs.idle()]);
    // 3,000 old records, 500 a chunk: the removal is done within a few chunks of that.
    expect(removedAfter).toBeDefined();
    expect(removedAfter).toBeLessThan(20);
    await runs.idle();
    expect(listRuns(store).map((r) => [r.kind, r.state])).toEqual([
      ["remove-source", "complete"],
      ["reread", "complete"],
    ]);
    // The users streamed meanwhile are users2's rows (the same as users'), read again whole after.
    const fresh = await built("fresh", moved(), USER_TABLES.users2!.slice(0, 500).map((row) => user(Number(row.id), row, T)));
    expect(store.countOf("records", "users")).toBe(USERS + 500);
    expect(dumpDifferences(dump(store, moved()), dump(fresh, moved()))).toEqual([]);
    expect(dump(store, moved())).toEqual(dump(fresh, moved()));
  });
});
