// What a state holds, read without writing: the status summary (positions, record counts, group sizes,
// outbox depths, dead-letter counts, Runs) and the dead letters with their reasons. Used by the
// `status` and `dead-letters` commands on a state opened read-only (beside a running daemon too), and
// meant for the daemon's API as well: each function takes an open Store and returns plain data.
import type { Store, StoredDeadLetter } from "../state/store.js";
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

/** The state's summary; models, groups and destinations are those the state's definitions record. */
export function stateStatus(store: Store): StateStatus {
  const definitions = storedDefinitions(store);
  const ids = (record: Record<string, unknown> | undefined) => Object.keys(record ?? {}).sort();
  const deadLetters = { change: 0, message: 0, export: 0 };
  for (const letter of store.listDeadLetters(Number.MAX_SAFE_INTEGER)) deadLetters[letter.kind] += 1;
  return {
    path: store.path,
    positions: [...store.allPositions()].map(([stream, position]) => ({ stream, position })).sort((a, b) => (a.stream < b.stream ? -1 : 1)),
    records: ids(definitions?.models).map((model) => ({ model, count: store.countOf("records", model) })),
    groups: ids(definitions?.groups).map((group) => ({ group, members: store.countOf("members", group) })),
    outbox: ids(definitions?.destinations).map((destination) => ({ destination, depth: store.outboxDepth(destination) })),
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
  const out: DeadLetterView[] = [];
  for (const letter of store.listDeadLetters(Number.MAX_SAFE_INTEGER)) {
    if (kind === "export" && letter.kind !== "export") continue;
    if (kind === "change" && letter.kind === "export") continue;
    if (kind === "message" && letter.kind !== "message") continue;
    out.push(viewDeadLetter(letter));
    if (out.length >= limit) break;
  }
  return out;
}
