// What a state holds, read without writing: the status summary (positions, record counts, group sizes,
// outbox depths, dead-letter counts, Runs), the dead letters with their reasons, one record with what
// each destination did with it, and pages of members, exports and dead letters. Used by the `status`
// and `dead-letters` commands on a state opened read-only (beside a running daemon too) and by the
// daemon's API: each function takes an open Store and returns plain data, reading without awaiting.
import { uniqueValueKey } from "../core/apply.js";
import { oversizedId } from "../core/keys.js";
import type { Domain } from "../core/domain.js";
import type { ExportResultEntry, OutboxEntry, Store, StoredDeadLetter } from "../state/store.js";
import { listRuns, storedDefinitions, type RunState } from "./runs.js";

export interface StateStatus {
  path: string;
  /** The last durable position of every stream (an LSN as X/Y, an offset, a watermark). */
  positions: { stream: string; position: string }[];
  records: { model: string; count: number }[];
  groups: { group: string; members: number }[];
  outbox: { destination: string; depth: number }[];
  deadLetters: { change: number; message: number; export: number };
  runs: RunState[];
}

/**
 * The state's summary; models, groups and destinations are those the state's definitions record and
 * those it holds counts and exports of (one a config change added, whose Run has not recorded it yet;
 * every one in a state without definitions, a worker's partition).
 */
export function stateStatus(store: Store): StateStatus {
  const definitions = storedDefinitions(store);
  const ids = (record: Record<string, unknown> | undefined, held: () => string[]) => [...new Set([...Object.keys(record ?? {}), ...held()])].sort();
  const deadLetters = { change: 0, message: 0, export: 0 };
  for (const { kind, count } of store.deadLetterTally()) deadLetters[kind] += count;
  return {
    path: store.path,
    positions: [...store.allPositions()].map(([stream, position]) => ({ stream, position })).sort((a, b) => (a.stream < b.stream ? -1 : 1)),
    records: ids(definitions?.models, () => store.countedIds("records")).map((model) => ({ model, count: store.countOf("records", model) })),
    groups: ids(definitions?.groups, () => store.countedIds("members")).map((group) => ({ group, members: store.countOf("members", group) })),
    outbox: store.namedOutboxDepths(ids(definitions?.destinations, () => store.destinationIds())).map(([destination, depth]) => ({ destination, depth })),
    deadLetters,
    runs: listRuns(store),
  };
}

/** `change`: what sources set aside (changes the core could not apply, messages that could not be decoded); `export`: exports. */
export type DeadLetterKind = "change" | "message" | "export";

/** One dead letter as an operator reads it. */
export interface DeadLetterView {
  seq: number;
  /** When it was set aside (ISO-8601). */
  at: string;
  kind: StoredDeadLetter["kind"];
  /** The source or destination that set it aside. */
  component: string;
  reason: string;
  /** change, message: the stream position it was read at; export: the record. */
  position?: string;
  recordId?: string;
  /** export: failed deliveries before it was set aside. */
  attempts?: number;
}

export function viewDeadLetter(letter: StoredDeadLetter): DeadLetterView {
  const at = new Date(letter.at).toISOString();
  if (letter.kind === "export") {
    return { seq: letter.seq, at, kind: "export", component: letter.destinationId, reason: letter.reason, recordId: letter.entry.recordId, attempts: (letter.entry.attempts ?? 0) + 1 };
  }
  return { seq: letter.seq, at, kind: letter.kind, component: letter.sourceId, reason: letter.reason, position: `${letter.change.position.stream} ${letter.change.position.position}` };
}

/** The dead letters of a state, oldest first; `kind` change takes changes and undecodable messages. */
export function deadLetters(store: Store, options: { kind?: DeadLetterKind; limit?: number } = {}): DeadLetterView[] {
  const { kind, limit = Number.MAX_SAFE_INTEGER } = options;
  // Read as far as the limit needs, not every letter first (a flood of them may not fit in memory).
  const keep = (letter: StoredDeadLetter) => (kind === "export" ? letter.kind === "export" : kind === "change" ? letter.kind !== "export" : kind === "message" ? letter.kind === "message" : true);
  return store.deadLettersAfter(undefined, limit, keep).letters.map(viewDeadLetter);
}

// --- One record, pages of members, exports and dead letters (the daemon's API) -------------------

/** What a destination did and will do with one record. */
export interface RecordDestinationView {
  /** What the destination acknowledged holding (null: nothing, or the record was deleted there). */
  acknowledged: { properties: Record<string, unknown>; groups: string[] } | null;
  /** The export waiting in the outbox, if any. */
  queued: ExportView | null;
  /** The destination's last answer for the record's export (absent before it answered once). */
  lastResult: { status: ExportResultEntry["status"]; at: string; seq: number; attempts: number; toDelete: boolean; message?: string } | null;
}

export interface RecordView {
  id: string;
  modelId: string;
  createdAt: string;
  /** Every property of the model: its value (null when none) and why it is null when the source had one. */
  properties: Record<string, { value: unknown; invalidReason: string | null }>;
  groups: string[];
  destinations: Record<string, RecordDestinationView>;
}

/** Finds a record by a unique property's value, written as a person writes it; the record id, or why not. */
export function findRecord(store: Store, domain: Domain, modelId: string, propertyId: string, text: string): { recordId: string } | { problem: "unknown-property" | "not-unique" | "invalid" | "not-found"; message: string } {
  if (propertyId === "grouparooId") {
    // An id too long to be a key of the state is no record's (and LMDB would refuse to look it up).
    return oversizedId(text) === undefined && store.getRecord(modelId, text) ? { recordId: text } : { problem: "not-found", message: `no ${modelId} record with grouparooId "${text}"` };
  }
  const property = domain.properties.get(propertyId);
  if (!property || property.modelId !== modelId) return { problem: "unknown-property", message: `model "${modelId}" has no property "${propertyId}"` };
  if (!property.unique) return { problem: "not-unique", message: `property "${propertyId}" is not unique: look records up by a unique property (${uniqueProperties(domain, modelId).join(", ")}) or grouparooId` };
  const key = uniqueValueKey(property.type, text);
  if ("invalid" in key) {
    // `?phone=+44...`: a query string reads "+" as a space, and the number without its "+" may not parse.
    const plus = property.type === "phoneNumber" && /^ +\d/.test(text) ? `; a "+" in a query string is read as a space: write it as %2B (?${propertyId}=%2B${text.trimStart()})` : "";
    return { problem: "invalid", message: `"${text}" is not a valid ${property.type} value for property "${propertyId}" (${key.invalid})${plus}` };
  }
  const recordId = store.recordIdByUnique(modelId, propertyId, key.key);
  return recordId === undefined ? { problem: "not-found", message: `no ${modelId} record with ${propertyId} ${JSON.stringify(text)}` } : { recordId };
}

export function uniqueProperties(domain: Domain, modelId: string): string[] {
  return [...domain.properties.values()].filter((p) => p.modelId === modelId && p.unique).map((p) => p.id);
}

export function recordView(store: Store, domain: Domain, modelId: string, recordId: string): RecordView | undefined {
  const record = store.getRecord(modelId, recordId);
  const model = domain.models.get(modelId);
  if (!record || !model) return undefined;
  const properties: RecordView["properties"] = {};
  for (const p of model.properties) properties[p.id] = { value: record.values[p.id] ?? (p.isArray ? [] : null), invalidReason: record.invalid[p.id] ?? null };
  const destinations: Record<string, RecordDestinationView> = {};
  for (const d of model.destinations) {
    const remote = store.remoteOf(d.id, recordId);
    const queued = store.queuedExportOf(d.id, recordId);
    const result = store.exportResultOf(d.id, recordId);
    destinations[d.id] = {
      acknowledged: remote ? { properties: remote.properties, groups: remote.groups } : null,
      queued: queued ? viewExport(queued) : null,
      lastResult: result ? { status: result.status, at: new Date(result.at).toISOString(), seq: result.seq, attempts: result.attempts, toDelete: result.toDelete, ...(result.message ? { message: result.message } : {}) } : null,
    };
  }
  return { id: record.id, modelId, createdAt: new Date(record.createdAt).toISOString(), properties, groups: [...record.groups], destinations };
}

/** One export waiting in an outbox. */
export interface ExportView {
  seq: number;
  recordId: string;
  /** waiting: not sent yet; sending: handed to the destination; retrying: failed before (it may have landed), waits for or is in its next attempt. */
  state: "waiting" | "sending" | "retrying";
  toDelete: boolean;
  attempts: number;
  /** The next attempt's earliest instant (ISO-8601), while retrying. */
  notBefore?: string;
  lastError?: string;
  /** When its source committed the change behind it (ISO-8601). */
  committedAt: string;
}

export function viewExport(entry: OutboxEntry): ExportView {
  const attempts = entry.attempts ?? 0;
  return {
    seq: entry.seq,
    recordId: entry.recordId,
    state: attempts > 0 ? "retrying" : entry.sending ? "sending" : "waiting",
    toDelete: entry.toDelete,
    attempts,
    ...(entry.notBefore !== undefined && attempts > 0 ? { notBefore: new Date(entry.notBefore).toISOString() } : {}),
    ...(entry.lastError ? { lastError: entry.lastError } : {}),
    committedAt: new Date(entry.commitTime).toISOString(),
  };
}

/** queued: in the outbox; retrying: in the outbox after a failed attempt; failed: dead-lettered. */
export type ExportState = "queued" | "retrying" | "failed";

/** A page of a destination's exports in one state, oldest first, after `after` (a seq). */
export function exportsPage(store: Store, destinationId: string, state: ExportState, after: number | undefined, limit: number): { exports: (ExportView | DeadLetterView)[]; last: number | undefined; more: boolean } {
  if (state === "failed") {
    const page = store.deadLettersAfter(after, limit, (l) => l.kind === "export" && l.destinationId === destinationId, SCAN_PER_PAGE);
    return { exports: page.letters.map(viewDeadLetter), last: page.last, more: page.more };
  }
  // A page that filters (retrying) reads at most SCAN_PER_PAGE exports, as the other filtered pages do.
  const page = store.outboxAfter(destinationId, after, limit, state === "retrying" ? (e) => (e.attempts ?? 0) > 0 : undefined, SCAN_PER_PAGE);
  return { exports: page.entries.map(viewExport), last: page.last, more: page.more };
}

/** Most entries one page reads while filtering (a page may hold fewer than its limit; the next goes on). */
export const SCAN_PER_PAGE = 20_000;

/** Whether a dead letter is of this kind and component (each when given). */
export function deadLetterFilter(filter: { kind?: DeadLetterKind; component?: string }): (letter: StoredDeadLetter) => boolean {
  return (letter) => {
    const component = letter.kind === "export" ? letter.destinationId : letter.sourceId;
    if (filter.component !== undefined && component !== filter.component) return false;
    if (filter.kind === "export") return letter.kind === "export";
    if (filter.kind === "change") return letter.kind !== "export";
    if (filter.kind === "message") return letter.kind === "message";
    return true;
  };
}

/** A page of dead letters, oldest first, after `after` (a seq), of one kind and component if given. */
export function deadLettersPage(store: Store, filter: { kind?: DeadLetterKind; component?: string }, after: number | undefined, limit: number): { deadLetters: DeadLetterView[]; last: number | undefined; more: boolean } {
  const page = store.deadLettersAfter(after, limit, deadLetterFilter(filter), SCAN_PER_PAGE);
  return { deadLetters: page.letters.map(viewDeadLetter), last: page.last, more: page.more };
}

/**
 * What a replay of every dead letter of a kind and component takes, oldest first: up to `max` that
 * `replayable` accepts, and up to `max` it does not (to be reported as skipped), read through the
 * whole store a page at a time (SCAN_PER_PAGE letters, yielding to the event loop between pages, no
 * read transaction kept across). Letters that cannot be replayed stay in the store, so a window of the
 * first letters alone would hold the same ones on every request and never reach those behind them.
 */
export async function selectForReplay(store: Store, filter: { kind?: DeadLetterKind; component?: string }, replayable: (letter: StoredDeadLetter) => boolean, max: number): Promise<StoredDeadLetter[]> {
  const keep = deadLetterFilter(filter);
  const chosen: StoredDeadLetter[] = [];
  let replaying = 0;
  let skipping = 0;
  let after: number | undefined;
  for (;;) {
    const page = store.deadLettersAfter(after, SCAN_PER_PAGE, keep, SCAN_PER_PAGE);
    for (const letter of page.letters) {
      if (replayable(letter)) {
        if (replaying >= max) return chosen;
        replaying += 1;
        chosen.push(letter);
      } else if (skipping < max) {
        skipping += 1;
        chosen.push(letter);
      }
    }
    if (!page.more || page.last === undefined) return chosen;
    after = page.last;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
