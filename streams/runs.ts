// Runs: work over the records already held, done a chunk at a time between batches of changes, each
// chunk and its progress in one durable transaction. Today: the backfill of a group that is new or
// whose rules changed since the state last saw it.
import type { Logger } from "pino";
import type { Domain } from "../core/domain.js";
import type { Store } from "../state/store.js";
import { backfillChunk } from "./batch.js";
import type { ChunkedWork } from "./pipeline.js";

export interface RunState {
  id: string;
  kind: "backfill";
  groupId: string;
  state: "running" | "complete";
  processed: number;
  startedAt: number;
  completedAt?: number;
}

const CHUNK = 500;

/** The Runs of the state (meta entries `run:<id>`). */
export function listRuns(store: Store): RunState[] {
  return store.metaWithPrefix<RunState>("run:");
}

/** The backfill of one group over its model's records, as chunked work. */
function backfill(store: Store, domain: Domain, run: RunState, modelId: string, logger: Logger): ChunkedWork {
  let after: string | undefined;
  return {
    step: async () => {
      const done = await backfillChunk(store, domain, modelId, run.groupId, after, Date.now(), CHUNK, (tx, _last, count) => {
        const current = tx.getMeta<RunState>(`run:${run.id}`) ?? run;
        tx.putMeta(`run:${run.id}`, { ...current, processed: current.processed + count });
      });
      if (done) {
        after = done.last;
        return true;
      }
      const group = domain.groups.get(run.groupId);
      await store.transact((tx) => {
        const current = tx.getMeta<RunState>(`run:${run.id}`) ?? run;
        tx.putMeta(`run:${run.id}`, { ...current, state: "complete", completedAt: Date.now() });
        if (group) tx.putMeta(`group:${group.id}`, group.fingerprint);
        logger.info({ run: run.id, processed: current.processed }, "backfill complete");
      });
      return false;
    },
  };
}

/** Starts a backfill Run for every group that is new or whose rules changed since the state last saw it. */
export async function startBackfills(domain: Domain, store: Store, schedule: (work: ChunkedWork) => void, logger: Logger): Promise<void> {
  for (const group of domain.groups.values()) {
    if (store.getMeta<string>(`group:${group.id}`) === group.fingerprint) continue;
    const run: RunState = { id: `backfill:${group.id}:${Date.now()}`, kind: "backfill", groupId: group.id, state: "running", processed: 0, startedAt: Date.now() };
    await store.putMeta(`run:${run.id}`, run);
    logger.info({ run: run.id, group: group.id }, "group is new or changed: backfilling it over existing records");
    schedule(backfill(store, domain, run, group.modelId, logger));
  }
}
