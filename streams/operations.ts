// The writes an operator asks for, over a state: exports retried from their dead letters, dead letters
// replayed or dropped. Each is one write transaction. The `retry-exports` command runs them on a state
// beside the daemon; the daemon's API runs the same functions inside its pipeline (Pipeline.perform),
// in turn with the batches, so the daemon stays the only writer of its state.
import type { BatchApplier} from "../core/apply.js";
import { type BatchResult } from "../core/apply.js";
import type { DestinationDef, Domain } from "../core/domain.js";
import { planExport } from "../core/exports.js";
import type { StoredDeadLetter, StoredExportDeadLetter, Store } from "../state/store.js";
import { applyBatch } from "./batch.js";

/**
 * Queues a fresh export of the record behind each dead-lettered export of `destination` that `select`
 * picks (the record as it is now, against what the destination acknowledged: never the stale letter);
 * the letters are removed. Returns how many exports were queued.
 */
export function retryExports(store: Store, destination: DestinationDef, select: (letter: StoredExportDeadLetter) => boolean): Promise<number> {
  return store.requeueExports(destination.id, select, (recordId, remote) => {
    const record = store.getRecord(destination.modelId, recordId);
    return planExport(destination, recordId, record ? { values: record.values, groups: record.groups } : null, remote, Date.now());
  });
}

/** What replaying dead letters did. */
export interface ReplayOutcome {
  /** Changes applied again (a change that fails again is a new dead letter, counted here too). */
  changes: number;
  /** Of those, the changes that failed again: each is a new dead letter, at the back of the store. */
  failedAgain: number;
  /** Exports queued again, by destination. */
  exports: Record<string, number>;
  /** Letters that cannot be replayed, with why (they stay). */
  skipped: { seq: number; reason: string }[];
  result?: BatchResult;
}

/** Why a dead letter cannot be replayed by this config, or null when it can. */
export function unreplayable(letter: StoredDeadLetter, domain: Domain): string | null {
  if (letter.kind === "message") return "a message its source could not decode: it cannot be applied again (fix the source, then read it again with POST /runs {source}), or delete it";
  if (letter.kind === "export" && !domain.destinations.has(letter.destinationId)) return `destination "${letter.destinationId}" is not in the config`;
  // Applied, it would only be set aside again, its reason replaced by this one and its seq by a new one.
  if (letter.kind === "change" && !domain.sources.has(letter.sourceId)) return `source "${letter.sourceId}" is not in the config`;
  return null;
}

/**
 * Replays dead letters: changes are applied again (without moving their stream's position; each
 * letter leaves in the transaction that applies it), exports are queued again as retryExports does.
 * Letters that cannot be replayed are skipped and stay.
 */
export async function replayDeadLetters(store: Store, domain: Domain, letters: readonly StoredDeadLetter[]): Promise<ReplayOutcome> {
  const outcome: ReplayOutcome = { changes: 0, failedAgain: 0, exports: {}, skipped: [] };
  const changes: StoredDeadLetter[] = [];
  const exports = new Map<string, Set<number>>();
  for (const letter of letters) {
    const reason = unreplayable(letter, domain);
    if (reason !== null) outcome.skipped.push({ seq: letter.seq, reason });
    else if (letter.kind === "export") exports.set(letter.destinationId, (exports.get(letter.destinationId) ?? new Set()).add(letter.seq));
    else changes.push(letter);
  }
  if (changes.length > 0) {
    outcome.result = await applyBatch(store, domain, [], Date.now(), (applier: BatchApplier, tx) => {
      for (const letter of changes) {
        if (letter.kind === "export" || !tx.deleteDeadLetter(letter.seq)) continue;
        applier.replay(letter.change);
        outcome.changes += 1;
      }
    });
    // The batch applies only these changes: every dead letter it stores is one of them set aside again.
    outcome.failedAgain = outcome.result.deadLetters;
  }
  for (const [destinationId, seqs] of exports) {
    const destination = domain.destinations.get(destinationId);
    if (destination) outcome.exports[destinationId] = await retryExports(store, destination, (letter) => seqs.has(letter.seq));
  }
  return outcome;
}

/** Drops dead letters by hand; returns the seqs that were there. */
export async function deleteDeadLetters(store: Store, seqs: readonly number[]): Promise<number[]> {
  return store.transact((tx) => seqs.filter((seq) => tx.deleteDeadLetter(seq)));
}
