// The units of work the pipeline runs against the state, each in one durable write transaction: a
// batch of changes, a sweep of the time index's due entries, a chunk of a group backfill. The core's
// BatchApplier does the work over the transaction's BatchState; the record and member counts it
// reports are written with it.
import { BatchApplier, type BatchResult } from "../core/apply.js";
import type { Change } from "../core/change.js";
import type { Domain } from "../core/domain.js";
import type { StateTransaction, Store } from "../state/store.js";

/**
 * Applies changes (and, through `extra`, time-index sweeps or backfill evaluations) in one write
 * transaction; resolves once it is durable.
 */
export function applyBatch(store: Store, domain: Domain, changes: readonly Change[], now: number, extra?: (applier: BatchApplier, tx: StateTransaction) => void): Promise<BatchResult> {
  return store.transact((tx) => {
    const applier = new BatchApplier(domain, tx, now);
    for (const change of changes) applier.apply(change);
    extra?.(applier, tx);
    const result = applier.finish();
    for (const [modelId, delta] of result.recordDelta) tx.bump("records", modelId, delta);
    for (const [groupId, delta] of result.memberDelta) tx.bump("members", groupId, delta);
    return result;
  });
}

/**
 * Re-evaluates every (record, group) due in the time index at `now`, in one transaction. Each due
 * entry leaves the index first (the evaluation puts the record's next boundary, always after `now`):
 * one nothing evaluates again (its group no longer in the config or no longer relative, its record
 * gone) would otherwise stay due, and the sweep run again at once, for ever.
 */
export async function sweep(store: Store, domain: Domain, now: number): Promise<BatchResult | undefined> {
  const due = store.dueBoundaries(now);
  if (due.length === 0) return undefined;
  return applyBatch(store, domain, [], now, (applier, tx) => {
    for (const entry of due) {
      tx.setBoundary(entry.modelId, entry.groupId, entry.recordId, entry.instant, null);
      applier.evaluate(entry.modelId, entry.groupId, entry.recordId);
    }
  });
}

/**
 * Evaluates one group for the next `limit` records after `after`, read in that transaction in key
 * order (each once), with `progress` (the Run's bookkeeping) written in the same transaction; returns
 * the last id done and what the chunk did, or undefined when none were left.
 */
export async function backfillChunk(
  store: Store,
  domain: Domain,
  modelId: string,
  groupId: string,
  after: string | undefined,
  now: number,
  limit = 500,
  progress?: (tx: StateTransaction, last: string, count: number) => void,
): Promise<{ last: string; count: number; result: BatchResult } | undefined> {
  let done: { last: string; count: number } | undefined;
  const result = await applyBatch(store, domain, [], now, (applier, tx) => {
    const records = store.recordsAfter(modelId, after, limit);
    const last = records[records.length - 1]?.id;
    if (last === undefined) return;
    for (const record of records) applier.evaluateRead(modelId, groupId, record);
    progress?.(tx, last, records.length);
    done = { last, count: records.length };
  });
  return done && { ...done, result };
}
