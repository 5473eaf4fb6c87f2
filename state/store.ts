// The only module that touches LMDB. One environment under --state DIR with typed sub-databases,
// every key led by model (or source / destination) and record so the state can later be split by
// partition (ARCHITECTURE.md, "The state's key layout"), and one write transaction per batch.
//
// Durability: lmdb-js runs each `transaction()` callback inside one LMDB write transaction (all of
// the batch's writes, its outbox entries and its source positions commit together or not at all).
// The environment is opened with `noSync: false` (every commit is fsynced), `useWritemap: false` (a
// stray write cannot corrupt the map) and `overlappingSync: false` (lmdb-js' default on Linux is
// true: the fsync then runs after the commit is already visible, and after a crash a reopened
// environment may pick either the last committed or the last flushed transaction; with it off,
// visible means durable, so the state a restart sees is exactly what was acknowledged or more).
// `noSubdir: false`: lmdb-js takes a path with an extension ("state.bak") for a file of its own
// otherwise, and the --state directory is always a directory.
// `applyBatch` also awaits `db.flushed` before it returns; only then may a source acknowledge the
// batch's positions (invariant 1).
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { open, type Database, type RootDatabase } from "lmdb";
import type { AggregateState } from "../core/aggregates.js";
import type { BatchState, DeadLetter, Identity, RowRef, StoredRecord, StoredRow } from "../core/apply.js";
import type { ExportPlan, RemoteState } from "../core/exports.js";
import type { PropertyValue } from "../core/vocabulary.js";
import { idKey } from "../core/keys.js";
import { CHANGELOG_TXN_KEY, PARTITION_STATE_KEY, type CapturedTransaction, type ChangelogRecord } from "../core/partitions.js";
import { createStateDir, DaemonLock, KEY_END, MAP_SIZE, refuseWorkerDirectory, RELAY_MARKER, ignoreOrphanedCommitRejections, requireExistingState, StateOpenError, stateFsError, stateWriteError, type StateWriteError } from "./open.js";

type Key = (string | number)[];
/** lmdb-js's key of the shared msgpack structures of a sub-database opened with them. */
const STRUCTURES = Symbol.for("structures");
/** The layout of the sub-databases; bumped whenever a key or value shape changes. */
export const STATE_FORMAT = 4;
/** The meta entry of an upgrade under way: the layout it started from. */
const UPGRADING_FROM = "upgrading-from";
/** How far an upgrade is: keys rewritten, and keys read (rewritten or not). */
export interface UpgradeProgress {
  rewritten: number;
  scanned: number;
}
/** Keys read (and rewritten) per transaction and per step of an upgrade; a test makes it small to cross chunks. */
export const UPGRADE_CHUNK = { keys: 10_000 };
const END = KEY_END;

export { idKey };

/** The positions of ids (record ids, row keys, unique values) in the keys of each sub-database. */
const ID_POSITIONS: Readonly<Record<string, readonly number[]>> = {
  records: [1], // [model, record]
  unique: [2], // [model, property, value]
  rows: [1], // [source, row key]
  attached: [1, 3], // [model, record, source, row key]
  pending: [2, 4], // [model, property, value, source, row key]
  refused: [2, 3], // [model, property, value, record]
  refusals: [2], // [model, property, record]
  "time-index": [3], // [instant, model, group, record]
  remote: [1], // [destination, record]
  "export-results": [1],
  "outbox-by-record": [1],
};

/**
 * A key of a sub-database with its ids as stored (idKey), or as text (how a changelog carries them,
 * whatever the layout), from ids either way.
 */
function withIds(name: string, key: Key | string, as: "stored" | "text"): Key | string {
  const at = ID_POSITIONS[name];
  if (!at || !Array.isArray(key)) return key;
  const out = [...key];
  for (const i of at) {
    const part = out[i];
    if (part !== undefined) out[i] = as === "stored" ? (typeof part === "string" ? idKey(part) : part) : String(part);
  }
  return out;
}

export interface OutboxEntry extends ExportPlan {
  seq: number;
  /** What the destination was expected to hold when this export was planned (null: nothing). */
  base?: RemoteState | null;
  /** Handed to the destination and not yet answered: a newer export queues behind it instead of replacing it. */
  sending?: boolean;
  /**
   * How many times a newer export of the record replaced this one in place (under the same seq, so
   * it keeps its place in the queue; only one never attempted, and not in a worker's partition: see
   * putExport). The mark that hands an export to the destination holds it only at the revision the
   * delivery loop read.
   */
  rev?: number;
  /** With `rev`: the commit time of the oldest change it carries (the plan's `commitTime` is the newest's). */
  waitingSince?: number;
  /** The seq of the export being sent that this one was queued behind (the record's index names it again if this one is dropped). */
  behind?: number;
  /** Failed deliveries so far. */
  attempts?: number;
  /** Not to be retried before this instant (epoch ms). */
  notBefore?: number;
  lastError?: string;
  /** An attempt failed without an answer for it (a timeout, a lost connection): it may have landed. */
  mayHaveLanded?: boolean;
}

/** What happened to one export sent to a destination. */
export interface ExportOutcome {
  entry: OutboxEntry;
  status: "ok" | "info" | "error";
  message?: string;
  /** For errors: when to try again (epoch ms); past maxAttempts the export is dead-lettered instead. */
  retryAt?: number;
  /** For errors: no answer for this export came back (the request may have been applied all the same). */
  mayHaveLanded?: boolean;
}

/** The last answer a destination gave for a record's export (the sub-database export-results). */
export interface ExportResultEntry {
  /** ok: acknowledged; info: skipped by the destination; retry: failed, to be tried again; dead_letter: failed for good. */
  status: "ok" | "info" | "retry" | "dead_letter";
  /** When the answer came (epoch ms). */
  at: number;
  seq: number;
  message?: string;
  /** Failed deliveries of that export so far. */
  attempts: number;
  toDelete: boolean;
}

export interface StoredExportDeadLetter {
  seq: number;
  at: number;
  kind: "export";
  destinationId: string;
  reason: string;
  entry: OutboxEntry;
}

/** Dead letters of one kind set aside by one source or destination (Store.deadLetterTally). */
export interface DeadLetterTally {
  kind: StoredDeadLetter["kind"];
  /** The source (change, message) or destination (export). */
  component: string;
  count: number;
}

export type StoredDeadLetter = (DeadLetter & { seq: number; at: number }) | StoredExportDeadLetter;

export interface BoundaryEntry {
  instant: number;
  modelId: string;
  groupId: string;
  recordId: string;
}

/** Sub-databases whose entries a Run may drop by key prefix when their definition is removed. */
export type PrefixedIndex = "records" | "unique" | "attached" | "pending" | "rows" | "outbox" | "outbox-by-record" | "remote" | "export-results";

/** One write transaction: the core's BatchState, plus the counters, meta entries and removals written with it. */
export interface StateTransaction extends BatchState {
  /** Adds `delta` to the count of records of a model or members of a group. */
  bump(kind: "records" | "members", id: string, delta: number): void;
  dropCounter(kind: "records" | "members", id: string): void;
  putMeta(key: string, value: unknown): void;
  getMeta<T>(key: string): T | undefined;
  deleteMeta(key: string): void;
  /** Drops up to `limit` entries whose keys start with `prefix`; returns how many. */
  dropPrefix(index: PrefixedIndex, prefix: Key, limit: number): number;
  /** Drops up to `limit` time-index entries of a model (of one group, if given); returns how many. */
  dropTimeIndex(modelId: string, groupId: string | undefined, limit: number): number;
  /** Removes one dead letter (replayed, or dropped by hand); false when there is none with that seq. */
  deleteDeadLetter(seq: number): boolean;
  /** Forgets a stream's position (a Run's re-read that ended: nothing reads it again). */
  deletePosition(stream: string): void;
}

/** How a state is opened (state/open.ts): by the daemon (created, locked), or by a command beside it. */
export interface StoreOpenOptions {
  /** Open for reading only (read-only commands, beside a running daemon); the state must exist. */
  readOnly?: boolean;
  /** Create the directory when missing (default); false refuses a path that holds no state. */
  create?: boolean;
  /** Take the exclusive daemon lock (one daemon per state) before LMDB is opened. */
  lock?: boolean;
  /**
   * A state of an older layout is upgraded by `upgrade()`, which the caller awaits before anything
   * else (it yields between chunks), instead of inside `open` (default: inside `open`).
   */
  deferUpgrade?: boolean;
}

export interface StoreOptions extends StoreOpenOptions {
  /**
   * Called inside every write transaction, after its body ran, with everything it wrote (a partition's
   * changelog, README "Relay and workers"): keys and values encoded as they are for LMDB's callers.
   */
  capture?: (transaction: CapturedTransaction) => void;
}

/** The sub-databases a changelog carries (every one the state writes in transactions). */
const CAPTURED = ["records", "unique", "rows", "pending", "attached", "refused", "refusals", "time-index", "remote", "export-results", "outbox", "outbox-by-record", "dead-letters", "positions", "counters", "meta"] as const;

/**
 * `{ ...base, ...fields }` (and `behind` when there is one), built without spreading `base`: V8 (Node
 * 20) takes a slow path for an object literal that spreads one object and then adds keys it lacks,
 * about 3 µs here for an outbox entry, which made writing an export cost more than encoding and
 * storing it. (`fields`, a literal of its own, spreads nothing but small literals.)
 * The base is a plan or an entry of the state's own making (no `__proto__` key to be set).
 */
function withFields<B extends object, F extends object>(base: B, fields: F, behind?: number): B & F & { behind?: number } {
  const out = Object.assign({}, base, fields) as B & F & { behind?: number };
  if (behind !== undefined) out.behind = behind;
  return out;
}

export class Store {
  readonly root: RootDatabase;
  private readonly lock: DaemonLock | undefined;
  private readonly records: Database<StoredRecord, Key>;
  private readonly unique: Database<string, Key>;
  private readonly rows: Database<StoredRow, Key>;
  /** Rows waiting for a record with their identity: [model, property, value, source, row key] → true. */
  private readonly pending: Database<true, Key>;
  /** Rows feeding a record: [model, record, source, row key] → true. */
  private readonly attached: Database<true, Key>;
  /**
   * Records refused a unique value another record held (Duplicate Value): [model, property, value,
   * record] → the value, and [model, property, record] → the value's key. Absent in a state opened
   * read-only that predates them.
   */
  private readonly refused: Database<PropertyValue, Key> | undefined;
  private readonly refusals: Database<string, Key> | undefined;
  private readonly timeIndex: Database<true, Key>;
  /** Where the next `dropTimeIndex` of a model (and group) resumes: the last entry it dropped (in memory; a restart scans from the start once). */
  private readonly timeIndexDropFrom = new Map<string, Key>();
  private readonly remote: Database<RemoteState, Key>;
  private readonly outbox: Database<OutboxEntry, Key>;
  private readonly outboxByRecord: Database<number, Key>;
  private readonly deadLetters: Database<StoredDeadLetter, Key>;
  /** deadLetterTally's counts as of the last call: how many letters, the highest seq among them, and the counts. */
  private letterTally: { count: number; last: number; counts: Map<string, DeadLetterTally> } | undefined;
  /** [destination, record] → the destination's last answer for the record's export; absent in a state opened read-only that predates it. */
  private readonly exportResults: Database<ExportResultEntry, Key> | undefined;
  private readonly positions: Database<string, string>;
  private readonly counters: Database<number, Key>;
  private readonly meta: Database<unknown, string>;
  private failed: StateWriteError | undefined;
  /** Set once the state was upgraded from an older layout: from which, how many keys it rewrote, how long it took. */
  upgraded: { from: number; keys: number; ms: number } | undefined;
  /** The older layout of a state whose upgrade has yet to run (or to finish); writes are refused meanwhile. */
  private upgradeFrom: number | undefined;

  /** The error of the write transaction that failed, after which every write is refused until a restart. */
  get writesRefused(): Error | undefined {
    return this.failed;
  }
  private readonly indexes: Record<PrefixedIndex, Database<unknown, Key>>;
  /** The writes of the transaction running, while a capture is set. */
  private captured: { records: ChangelogRecord[]; positions: Map<string, string>; outboxSeqs: Map<string, number> } | undefined;
  private readonly byName = new Map<string, Database<unknown, Key | string>>();

  private constructor(
    readonly path: string,
    private readonly options: StoreOptions = {},
  ) {
    // A worker's --state holds its partitions' states, under it: none of the daemon's commands opens it.
    if (!options.capture) refuseWorkerDirectory(path);
    if (options.readOnly || options.create === false) requireExistingState(path);
    else createStateDir(path);
    if (existsSync(join(path, RELAY_MARKER))) {
      throw new StateOpenError(`the state in ${path} is a grouparoo-stream relay's state: only the relay opens it (nothing was changed); give a daemon's or a worker partition's --state`, "layout");
    }
    this.lock = options.lock ? DaemonLock.acquire(path) : undefined;
    if (!options.readOnly) ignoreOrphanedCommitRejections();
    try {
      this.root = open({ path, noSubdir: false, noSync: false, useWritemap: false, overlappingSync: false, maxDbs: 32, cache: false, mapSize: MAP_SIZE, ...(options.readOnly ? { readOnly: true } : {}) });
    } catch (error) {
      this.lock?.release();
      throw stateFsError(error, path);
    }
    // Opening writes too (the sub-databases of a new state, its layout): a full disk or another I/O
    // error there names the state directory, as a failed open does.
    try {
      const db = <V, K extends Key | string = Key>(name: string) => this.root.openDB<V, K>({ name });
      // Object values of one shape (records, rows, exports) keep their property names once, in a shared
      // structures entry of their sub-database (msgpackr records), instead of in every value: values are
      // about a third of the size and encode and decode about a third faster. Only sub-databases whose
      // ranges are always bounded by a model, source or destination use it (the entry's key is a symbol).
      const structured = <V>(name: string) => this.root.openDB<V, Key>({ name, sharedStructuresKey: STRUCTURES });
      this.records = structured("records");
      this.unique = db("unique");
      this.rows = structured("rows");
      this.pending = db("pending");
      this.attached = db("attached");
      // Added after layout 4 without changing it: a state written before has none until a daemon opens it.
      this.refused = (db<PropertyValue>("refused") as Database<PropertyValue, Key> | undefined) ?? undefined;
      this.refusals = (db<string>("refusals") as Database<string, Key> | undefined) ?? undefined;
      this.timeIndex = db("time-index");
      this.remote = structured("remote");
      this.outbox = structured("outbox");
      this.outboxByRecord = db("outbox-by-record");
      this.deadLetters = db("dead-letters");
      // Added after layout 3 without changing it: a state written before has none until a daemon opens it.
      this.exportResults = (db<ExportResultEntry>("export-results") as Database<ExportResultEntry, Key> | undefined) ?? undefined;
      this.positions = db<string, string>("positions");
      this.counters = db("counters");
      this.meta = db<unknown, string>("meta");
      this.indexes = {
        records: this.records,
        unique: this.unique,
        attached: this.attached,
        pending: this.pending,
        rows: this.rows,
        outbox: this.outbox,
        "outbox-by-record": this.outboxByRecord,
        remote: this.remote,
        "export-results": this.exportResults ?? this.remote,
      } as Record<PrefixedIndex, Database<unknown, Key>>;
      const named: Record<(typeof CAPTURED)[number], Database<unknown, Key | string> | undefined> = {
        records: this.records,
        unique: this.unique,
        rows: this.rows,
        pending: this.pending,
        attached: this.attached,
        refused: this.refused,
        refusals: this.refusals,
        "time-index": this.timeIndex,
        remote: this.remote,
        "export-results": this.exportResults,
        outbox: this.outbox,
        "outbox-by-record": this.outboxByRecord,
        "dead-letters": this.deadLetters,
        positions: this.positions,
        counters: this.counters,
        meta: this.meta,
      } as Record<(typeof CAPTURED)[number], Database<unknown, Key | string> | undefined>;
      for (const name of CAPTURED) {
        const sub = named[name];
        if (sub) this.byName.set(name, sub);
      }
      this.checkFormat();
      this.checkPartition();
    } catch (error) {
      if (error instanceof StateOpenError) throw error;
      this.root.close();
      this.lock?.release();
      throw stateFsError(error, path);
    }
    // The upgrade's own writes are not captured (a changelog carries ids as text in every layout).
    if (options.capture) for (const [name, sub] of this.byName) this.captureWrites(name, sub);
  }

  /**
   * Records every put and remove of a sub-database made inside a write transaction. The value is
   * encoded at once (v8 serialisation: Dates, Buffers and bigints survive), since the core may change
   * an object after writing it. lmdb-js's own entry of shared structures (a symbol key) is not state.
   */
  private captureWrites(name: string, db: Database<unknown, Key | string>): void {
    const put = db.put.bind(db) as (key: Key | string, value: unknown, ...rest: unknown[]) => Promise<boolean>;
    const remove = db.remove.bind(db) as (key: Key | string, ...rest: unknown[]) => Promise<boolean>;
    // Ids as text: a changelog's keys (its compaction keys) are the same whatever the state's layout.
    const encodeKey = (key: Key | string) => Buffer.from(JSON.stringify([name, withIds(name, key, "text")]));
    (db as { put: unknown }).put = (key: Key | string, value: unknown, ...rest: unknown[]) => {
      const captured = this.captured;
      if (captured && typeof key !== "symbol") {
        captured.records.push({ key: encodeKey(key), value: serialize(value) });
        if (name === "positions") captured.positions.set(String(key), String(value));
        else if (name === "meta" && typeof key === "string" && key.startsWith("seq:outbox:")) captured.outboxSeqs.set(key.slice("seq:outbox:".length), Number(value));
      }
      return put(key, value, ...rest);
    };
    (db as { remove: unknown }).remove = (key: Key | string, ...rest: unknown[]) => {
      if (this.captured && typeof key !== "symbol") this.captured.records.push({ key: encodeKey(key), value: null });
      return remove(key, ...rest);
    };
  }

  /** The id of the last transaction a restore under way read (written by completeRestore). */
  private restoredTransaction: unknown;

  /**
   * Writes changelog records into the state (restoring a partition), in one transaction; nothing of it
   * is captured again. Records of sub-databases this version does not know are refused. With
   * `holdTransaction` (a restore in batches into an empty state), the id of the last changelog transaction is kept back
   * until completeRestore: a restore cut short (the partition given up meanwhile, a SIGKILL) leaves
   * a copy that names no transaction, so it is restored again rather than kept. (The id's record may
   * come before other records of its Kafka transaction: several state transactions share one, each
   * key at its first write's place; before 2026-12-03 a copy cut there was kept, without them.)
   */
  async applyChangelog(records: readonly ChangelogRecord[], options: { holdTransaction?: boolean } = {}): Promise<void> {
    if (this.upgradeFrom !== undefined) throw new Error(`the state's upgrade from layout ${this.upgradeFrom} to layout ${STATE_FORMAT} has not run: await upgrade() first`);
    const decoded = records.flatMap((r) => {
      const [name, key] = JSON.parse(r.key.toString("utf8")) as [string, Key | string];
      const db = this.byName.get(name);
      if (!db) throw new Error(`a changelog record of an unknown sub-database "${name}"`);
      const value = r.value === null ? undefined : (deserialize(r.value) as unknown);
      if (options.holdTransaction && name === "meta" && key === CHANGELOG_TXN_KEY) {
        this.restoredTransaction = value;
        return [];
      }
      return [{ db, key: withIds(name, key, "stored"), value }];
    });
    const capture = this.captured;
    try {
      await this.root.transaction(() => {
        this.captured = undefined;
        for (const { db, key, value } of decoded) {
          if (value === undefined) void db.remove(key);
          else void db.put(key, value);
        }
        this.captured = capture;
      });
    } catch (error) {
      throw await stateWriteError(error, this.path);
    }
    await this.root.flushed;
  }

  /** Ends a restore made with `holdTransaction`: the state now reflects the changelog's last transaction. */
  async completeRestore(): Promise<void> {
    const id = this.restoredTransaction;
    this.restoredTransaction = undefined;
    if (id === undefined) return;
    await this.applyChangelog([{ key: Buffer.from(JSON.stringify(["meta", CHANGELOG_TXN_KEY])), value: serialize(id) }]);
  }

  /** The id of the last captured transaction this state reflects (a changelog's, once restored). */
  changelogTransaction(): string | undefined {
    return this.meta.get(CHANGELOG_TXN_KEY) as string | undefined;
  }

  /** Refuses a state written in another layout (it would be misread), and stamps a new one. */
  private checkFormat(): void {
    if (!this.meta) {
      // Read-only, an environment without the daemon's sub-databases is not a daemon's state.
      this.root.close();
      this.lock?.release();
      throw new StateOpenError(`the directory ${this.path} holds an LMDB environment that is not a grouparoo-stream state (nothing was changed)`, "layout");
    }
    const format = this.meta.get("format");
    const upgrading = this.meta.get(UPGRADING_FROM) as number | undefined;
    if (format === STATE_FORMAT && upgrading === undefined) return;
    if (format === 2 || format === 3 || (format === STATE_FORMAT && upgrading !== undefined)) {
      // Only the state's owner upgrades it: the daemon (holding the lock) or a worker (its partitions).
      // A command beside a daemon of the older version would rewrite keys under it.
      if (this.options.readOnly || !(this.options.lock || this.options.capture)) {
        this.root.close();
        this.lock?.release();
        throw new StateOpenError(
          upgrading === undefined
            ? `the state in ${this.path} has layout ${String(format)}, which this version upgrades to layout ${STATE_FORMAT} when the daemon (run) or a worker starts on it; start it first, once a daemon of the older version is stopped (nothing was changed)`
            : `the state in ${this.path} is being upgraded from layout ${upgrading} to layout ${STATE_FORMAT}, or its upgrade stopped part-way; the daemon (run) or a worker finishes it when it starts (nothing was changed)`,
          "layout",
        );
      }
      this.upgradeFrom = upgrading ?? (format as number);
      return;
    }
    if (typeof format === "number" && format > STATE_FORMAT) {
      this.root.close();
      this.lock?.release();
      throw new StateOpenError(`the state in ${this.path} has layout ${format}, written by a newer version; this version reads layouts up to ${STATE_FORMAT}: run the newer version on it (nothing was changed)`, "layout");
    }
    const hasRecords = [...this.records.getKeys({ limit: 2 })].some((key) => Array.isArray(key));
    const empty = !hasRecords && this.positions.getKeysCount({ limit: 1 }) === 0;
    if (format !== undefined || !empty) {
      this.root.close();
      this.lock?.release();
      throw new StateOpenError(`the state in ${this.path} has layout ${String(format ?? 1)}, this version reads layout ${STATE_FORMAT}: start from an empty --state directory (sources re-read from their snapshot or earliest position)`, "layout");
    }
    if (!this.options.readOnly) this.meta.putSync("format", STATE_FORMAT);
  }

  /** How many keys an upgrade scans at most: every entry of the sub-databases whose keys hold ids. */
  upgradeKeyCount(): number {
    let n = 0;
    for (const name of Object.keys(ID_POSITIONS)) n += (this.byName.get(name)?.getStats() as { entryCount?: number } | undefined)?.entryCount ?? 0;
    return n;
  }

  /** True while the state's upgrade from an older layout has yet to run or to finish. */
  get needsUpgrade(): boolean {
    return this.upgradeFrom !== undefined;
  }

  /**
   * Upgrades a state of an older layout (see StoreOpenOptions.deferUpgrade), yielding to the event
   * loop after each chunk of keys; `progress` gets the keys rewritten and scanned so far.
   */
  async upgrade(progress?: (step: UpgradeProgress) => void): Promise<void> {
    for (const step of this.upgradeSteps()) {
      // A throw from `progress` (a stop) leaves the upgrade to resume at the next start.
      progress?.(step);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Layout 2 or 3 to 4, one chunk of keys per step and per transaction. The new layout is stamped
   * first, with the layout it comes from (an older version refuses the state from then on, and a stop
   * part-way resumes at the next start). Layout 2's index of members goes (the records hold their
   * groups). The ids in keys become numbers where they are canonical integers (idKey): a converted key
   * is not converted again, and it sorts before the key it replaces, behind the scan.
   */
  private *upgradeSteps(): Generator<UpgradeProgress> {
    const from = this.upgradeFrom;
    if (from === undefined) return;
    const started = performance.now();
    this.root.transactionSync(() => {
      void this.meta.put("format", STATE_FORMAT);
      void this.meta.put(UPGRADING_FROM, from);
    });
    if (from === 2) this.root.openDB({ name: "members" }).dropSync();
    const chunk = Math.max(2, UPGRADE_CHUNK.keys); // the scan re-reads its start: a chunk of 1 would not move on
    let rewritten = 0;
    let scanned = 0;
    for (const name of Object.keys(ID_POSITIONS)) {
      const db = this.byName.get(name);
      if (!db) continue;
      let start: Key | undefined;
      for (;;) {
        const moves: { from: Key; to: Key; value: unknown }[] = [];
        let read = 0;
        let last: Key | undefined;
        for (const { key, value } of db.getRange({ ...(start === undefined ? {} : { start }), limit: chunk })) {
          read += 1;
          scanned += 1;
          if (!Array.isArray(key)) continue; // lmdb-js's entry of shared structures
          last = key;
          const to = withIds(name, key, "stored") as Key;
          if (to.some((part, i) => part !== key[i])) moves.push({ from: key, to, value });
        }
        if (moves.length > 0) {
          rewritten += moves.length;
          this.root.transactionSync(() => {
            for (const move of moves) {
              void db.remove(move.from);
              void db.put(move.to, move.value);
            }
          });
        }
        // After every chunk, moved or not: a resumed upgrade re-reads what it already converted.
        yield { rewritten, scanned };
        if (read < chunk || last === undefined) break;
        start = last;
      }
    }
    // A Run part-way through records or rows (queued or running) resumed after the last id it did, in
    // text order: its phase starts again from the first id, in the new order, and counts its progress
    // again from zero (every phase that pages by id is idempotent). A re-read's cursor is a stream
    // position, not an id; a Run that ended keeps what it did.
    const runs = [...this.meta.getRange({ start: "run:", end: "run:\uffff" })];
    this.root.transactionSync(() => {
      for (const { key, value } of runs) {
        const run = value as { kind?: string; state?: string; cursor?: string; processed?: number };
        if (run.kind === "reread" || run.cursor === undefined || (run.state !== "running" && run.state !== "queued")) continue;
        const { cursor: _cursor, ...rest } = run;
        void this.meta.put(key, { ...rest, processed: 0 });
      }
      void this.meta.remove(UPGRADING_FROM);
    });
    this.upgradeFrom = undefined;
    this.upgraded = { from, keys: rewritten, ms: Math.round(performance.now() - started) };
  }

  /**
   * A worker's partition state is written only with its changelog captured (by its worker): a write
   * without it (run, rebuild, retry-exports) would be lost at the partition's next restore. Read-only
   * commands open it.
   */
  private checkPartition(): void {
    if (this.options.readOnly) return;
    const marked = this.meta.get(PARTITION_STATE_KEY) !== undefined;
    if (this.options.capture) {
      if (!marked) this.meta.putSync(PARTITION_STATE_KEY, true);
      return;
    }
    if (!marked) return;
    this.root.close();
    this.lock?.release();
    throw new StateOpenError(`the state in ${this.path} is a partition of a grouparoo-stream worker: only its worker writes it (its writes go to the partition's changelog); read it with status or dead-letters`, "layout");
  }

  static open(path: string, options: StoreOptions = {}): Store {
    const store = new Store(path, options);
    if (options.deferUpgrade) return store;
    try {
      for (const _step of store.upgradeSteps());
    } catch (error) {
      store.root.close();
      store.lock?.release();
      throw error;
    }
    return store;
  }

  /**
   * Runs one write transaction. After one has failed, every later one is refused: msgpack may have
   * learnt a shared structure in the aborted transaction that was never stored, and a value written
   * with it would not read back after a restart. Reopening the state (restarting) reloads them.
   */
  private async write(body: () => void): Promise<void> {
    if (this.upgradeFrom !== undefined) throw new Error(`the state's upgrade from layout ${this.upgradeFrom} to layout ${STATE_FORMAT} has not run: await upgrade() first`);
    if (this.failed) throw new Error(`the state refuses writes after a failed transaction (${this.failed.why}); restart to reopen it`);
    try {
      const capture = this.options.capture;
      await this.root.transaction(
        capture
          ? () => {
              this.captured = { records: [], positions: new Map(), outboxSeqs: new Map() };
              try {
                body();
                if (this.captured.records.length > 0) {
                  const id = randomBytes(8).toString("hex");
                  void this.meta.put(CHANGELOG_TXN_KEY, id);
                  const { records, positions, outboxSeqs } = this.captured;
                  capture({ id, records, positions, outboxSeqs });
                }
              } finally {
                this.captured = undefined;
              }
            }
          : body,
      );
    } catch (error) {
      const failure = await stateWriteError(error, this.path);
      this.failed ??= failure;
      throw failure;
    }
  }

  /**
   * Runs `body` in one write transaction (everything it writes commits together or not at all) and
   * resolves with its result once that transaction is durable: only then may a source acknowledge the
   * positions it wrote (invariant 1).
   */
  async transact<T>(body: (tx: StateTransaction) => T): Promise<T> {
    let result: { value: T } | undefined;
    await this.write(() => {
      const seqs = new Map<string, number>();
      const tx: StateTransaction = {
        ...this.batchState(seqs),
        bump: (kind, id, delta) => this.bump([kind, id], delta),
        dropCounter: (kind, id) => void this.counters.remove([kind, id]),
        putMeta: (key, value) => void this.meta.put(key, value),
        getMeta: <M>(key: string) => this.meta.get(key) as M | undefined,
        deleteMeta: (key) => void this.meta.remove(key),
        dropPrefix: (index, prefix, limit) => {
          const db = this.indexes[index];
          let n = 0;
          for (const key of db.getKeys({ start: prefix, end: [...prefix, END], limit })) {
            db.remove(key as Key);
            n += 1;
          }
          return n;
        },
        dropTimeIndex: (modelId, groupId, limit) => {
          // The index is ordered by instant, not by model: each call resumes after the last entry the
          // previous call of the same removal dropped. (Each call scanned from the start before, skipping
          // the other models' entries again: 1,000,000 entries among as many of another model took 32.7 s
          // in chunks of 5,000, now 2.9 s.) None is left only once a scan from the start finds fewer than the limit.
          const resumeKey = `${modelId}\u0000${groupId ?? ""}`;
          let from = this.timeIndexDropFrom.get(resumeKey);
          let n = 0;
          let last: Key | undefined;
          for (;;) {
            for (const key of this.timeIndex.getKeys(from === undefined ? {} : { start: from })) {
              const k = key as Key;
              if (k[1] !== modelId || (groupId !== undefined && k[2] !== groupId)) continue;
              this.timeIndex.remove(k);
              last = k;
              if (++n >= limit) break;
            }
            if (n >= limit || from === undefined) break;
            from = undefined;
          }
          if (n >= limit && last !== undefined) this.timeIndexDropFrom.set(resumeKey, last);
          else this.timeIndexDropFrom.delete(resumeKey);
          return n;
        },
        deleteDeadLetter: (seq) => {
          if (this.deadLetters.get([seq]) === undefined) return false;
          this.deadLetters.remove([seq]);
          return true;
        },
        deletePosition: (stream) => {
          if (this.positions.get(stream) !== undefined) void this.positions.remove(stream);
        },
      };
      result = { value: body(tx) };
      for (const [name, seq] of seqs) this.meta.put(`seq:${name}`, seq);
    });
    await this.root.flushed;
    if (!result) throw new Error("the write transaction did not run");
    return result.value;
  }

  private bump(key: Key, delta: number): void {
    if (delta !== 0) this.counters.put(key, (this.counters.get(key) ?? 0) + delta);
  }

  /** Sequence numbers are counted in memory during a batch and written once at its end. */
  private nextSeq(seqs: Map<string, number>, name: string): number {
    const seq = (seqs.get(name) ?? (this.meta.get(`seq:${name}`) as number | undefined) ?? 0) + 1;
    seqs.set(name, seq);
    return seq;
  }

  private batchState(seqs: Map<string, number>): BatchState {
    const keysOf = (db: Database<unknown, Key>, prefix: Key) => [...db.getKeys({ start: prefix, end: [...prefix, END] })] as Key[];
    // The export queued for a record, read once for getBaseline and the putExport that follows it.
    let lastQueued: { d: string; r: string; entry: OutboxEntry | undefined } | undefined;
    const queuedExport = (d: string, r: string): OutboxEntry | undefined => {
      if (lastQueued?.d === d && lastQueued.r === r) return lastQueued.entry;
      const seq = this.outboxByRecord.get([d, idKey(r)]);
      const entry = seq === undefined ? undefined : this.outbox.get([d, seq]);
      lastQueued = { d, r, entry };
      return entry;
    };
    // Whether a model has rows waiting for their record, as found once in this transaction (true once
    // one is added, unknown again once one is removed): while none wait, each new unique value of its
    // records claims nothing without a range read.
    const waiting = new Map<string, boolean>();
    const anyWaiting = (m: string): boolean => {
      let known = waiting.get(m);
      if (known === undefined) {
        // getKeysCount ignores `limit` (lmdb-js counts the whole range): one key read says it.
        known = false;
        for (const _key of this.pending.getKeys({ start: [m], end: [m, END], limit: 1 })) known = true;
        waiting.set(m, known);
      }
      return known;
    };
    return {
      getRecord: (m, r) => this.records.get([m, idKey(r)]),
      recordIdsOf: (m) => keysOf(this.records, [m]).map((k) => String(k[1])),
      putRecord: (m, record) => void this.records.put([m, idKey(record.id)], record),
      deleteRecord: (m, r) => void this.records.remove([m, idKey(r)]),
      getUnique: (m, p, v) => this.unique.get([m, p, idKey(v)]),
      setUnique: (m, p, v, r) => void this.unique.put([m, p, idKey(v)], r),
      deleteUnique: (m, p, v) => void this.unique.remove([m, p, idKey(v)]),
      getRow: (s, k) => this.rows.get([s, idKey(k)]),
      putRow: (s, k, row) => void this.rows.put([s, idKey(k)], row),
      deleteRow: (s, k) => void this.rows.remove([s, idKey(k)]),
      rowKeysOfSource: (s) => keysOf(this.rows, [s]).map((k) => String(k[1])),
      attachRow: (m, r, ref) => void this.attached.put([m, idKey(r), ref.sourceId, idKey(ref.rowKey)], true),
      detachRow: (m, r, ref) => void this.attached.remove([m, idKey(r), ref.sourceId, idKey(ref.rowKey)]),
      attachedRows: (m, r, s) => keysOf(this.attached, s === undefined ? [m, idKey(r)] : [m, idKey(r), s]).map((k) => ({ sourceId: String(k[2]), rowKey: String(k[3]) })),
      // One key per waiting row: many rows waiting on one value (guest purchases with user_id 0) stay
      // O(log n) each to add, remove and claim.
      addPending: (m, id: Identity, ref: RowRef) => {
        waiting.set(m, true);
        void this.pending.put([m, id.propertyId, idKey(id.valueKey), ref.sourceId, idKey(ref.rowKey)], true);
      },
      deletePending: (m, id, ref) => {
        waiting.delete(m);
        void this.pending.remove([m, id.propertyId, idKey(id.valueKey), ref.sourceId, idKey(ref.rowKey)]);
      },
      pendingRows: (m, id) => (anyWaiting(m) ? keysOf(this.pending, [m, id.propertyId, idKey(id.valueKey)]).map((k) => ({ sourceId: String(k[3]), rowKey: String(k[4]) })) : []),
      setRefused: (m, p, r, next) => {
        const refused = this.refused as Database<PropertyValue, Key>;
        const refusals = this.refusals as Database<string, Key>;
        const previous = refusals.get([m, p, idKey(r)]);
        if (previous !== undefined && previous !== next?.valueKey) void refused.remove([m, p, idKey(previous), idKey(r)]);
        if (next) {
          void refused.put([m, p, idKey(next.valueKey), idKey(r)], next.value);
          if (previous !== next.valueKey) void refusals.put([m, p, idKey(r)], next.valueKey);
        } else if (previous !== undefined) void refusals.remove([m, p, idKey(r)]);
      },
      firstRefused: (m, p, v) => {
        for (const { key, value } of (this.refused as Database<PropertyValue, Key>).getRange({ start: [m, p, idKey(v)], end: [m, p, idKey(v), END], limit: 1 })) {
          return { recordId: String((key as Key)[3]), value };
        }
        return undefined;
      },
      setBoundary: (m, g, r, previous, next) => {
        if (previous !== undefined) this.timeIndex.remove([previous, m, g, idKey(r)]);
        if (next !== null) this.timeIndex.put([next, m, g, idKey(r)], true);
      },
      getBaseline: (d, r) => {
        const queued = queuedExport(d, r);
        if (queued?.sending) return queued.toDelete ? null : { properties: queued.newRecordProperties, groups: queued.newGroups };
        if (queued) return queued.base ?? null;
        return this.remote.get([d, idKey(r)]) ?? null;
      },
      putExport: (d, r, plan, baseline) => {
        const queued = queuedExport(d, r);
        lastQueued = undefined;
        // A newer export supersedes an unsent older one; one being sent stays, and the new one follows it.
        const behind = queued?.sending ? queued.seq : queued?.behind;
        if (plan && queued && !queued.sending && queued.attempts === undefined && !queued.mayHaveLanded && !this.options.capture) {
          // Never attempted, so no destination saw its seq (a webhook's Idempotency-Key is made of
          // seqs; the mark that hands it over is durable before it leaves): replaced in place, it
          // keeps its place in the queue (a record changing faster than a backlog drains would
          // otherwise go to the back each time) and its index entry. Not in a worker's partition: its
          // mark reaches the changelog after the send, so the next owner may not know it left.
          this.outbox.put([d, queued.seq], withFields(plan, { seq: queued.seq, rev: (queued.rev ?? 0) + 1, waitingSince: queued.waitingSince ?? queued.commitTime, base: baseline }, behind));
          return;
        }
        if (queued && !queued.sending) this.outbox.remove([d, queued.seq]);
        if (!plan) {
          if (queued && !queued.sending) {
            // Nothing more to send: the record's index names the export it followed again, while that
            // one is still queued (later plans are made against what it carries, not against what
            // the destination held before it).
            if (behind !== undefined && this.outbox.get([d, behind]) !== undefined) this.outboxByRecord.put([d, idKey(r)], behind);
            else this.outboxByRecord.remove([d, idKey(r)]);
          }
          return;
        }
        const seq = this.nextSeq(seqs, `outbox:${d}`);
        this.outbox.put([d, seq], withFields(plan, { seq, base: baseline }, behind));
        this.outboxByRecord.put([d, idKey(r)], seq);
      },
      deadLetter: (entry) => {
        const seq = this.nextSeq(seqs, "dead-letters");
        this.deadLetters.put([seq], withFields(entry, { seq, at: Date.now() }));
      },
      setPosition: (stream, position) => void this.positions.put(stream, position),
    };
  }

  // --- Reads (outside the write path) --------------------------------------------------------

  getRecord(modelId: string, recordId: string): StoredRecord | undefined {
    return this.records.get([modelId, idKey(recordId)]);
  }

  *recordsOf(modelId: string): Generator<StoredRecord> {
    for (const { value } of this.records.getRange({ start: [modelId], end: [modelId, END] })) yield value;
  }

  /** Up to `limit` records of a model after the id `after` (exclusive), in key order, each a fresh copy. */
  recordsAfter(modelId: string, after: string | undefined, limit: number): StoredRecord[] {
    const start: Key = after === undefined ? [modelId] : [modelId, idKey(after)];
    const out: StoredRecord[] = [];
    for (const { key, value } of this.records.getRange({ start, end: [modelId, END], limit: limit + 1 })) {
      if (after !== undefined && String((key as Key)[1]) === after) continue;
      out.push(value);
      if (out.length === limit) break;
    }
    return out;
  }

  recordIdsOf(modelId: string, after: string | undefined, limit: number): string[] {
    return this.secondKeys(this.records, modelId, after, limit);
  }

  /** Row keys of a source after `after` (exclusive), in key order. */
  rowKeysOf(sourceId: string, after: string | undefined, limit: number): string[] {
    return this.secondKeys(this.rows, sourceId, after, limit);
  }

  /** Ids of the records a destination holds (acknowledged), after `after`, in key order. */
  remoteRecordIds(destinationId: string, after: string | undefined, limit: number): string[] {
    return this.secondKeys(this.remote, destinationId, after, limit);
  }

  /** Ids of the records with an export in a destination's outbox, after `after`, in key order. */
  queuedRecordIds(destinationId: string, after: string | undefined, limit: number): string[] {
    return this.secondKeys(this.outboxByRecord, destinationId, after, limit);
  }

  /** The second key element of the entries under [first], after `after` (exclusive). */
  private secondKeys(db: Database<unknown, Key>, first: string, after: string | undefined, limit: number): string[] {
    const start: Key = after === undefined ? [first] : [first, idKey(after)];
    const ids: string[] = [];
    for (const key of db.getKeys({ start, end: [first, END], limit: limit + 1 })) {
      const id = String((key as Key)[1]);
      if (id !== after) ids.push(id);
      if (ids.length === limit) break;
    }
    return ids;
  }

  /** Up to `limit` stored rows of a source after `after` (exclusive), in key order. */
  rowsAfter(sourceId: string, after: string | undefined, limit: number): [string, StoredRow][] {
    const start: Key = after === undefined ? [sourceId] : [sourceId, idKey(after)];
    const out: [string, StoredRow][] = [];
    for (const { key, value } of this.rows.getRange({ start, end: [sourceId, END], limit: limit + 1 })) {
      const rowKey = String((key as Key)[1]);
      if (rowKey === after) continue;
      out.push([rowKey, value]);
      if (out.length === limit) break;
    }
    return out;
  }

  /** How many entries a source has in the row store. */
  rowCount(sourceId: string): number {
    return this.rows.getCount({ start: [sourceId], end: [sourceId, END] });
  }

  /** The stored definitions (meta entries def:<class>:<id>). */
  definitionEntries(): [string, unknown][] {
    return [...this.meta.getRange({ start: "def:", end: "def:\uffff" })].map(({ key, value }) => [key, value]);
  }

  /**
   * The members of a group in record order, after `after`, at most `limit`. Membership lives in each
   * record (its groups), not in an index of its own: a change entering or leaving groups writes its
   * record once, whatever the number of groups; listing reads records in order.
   */
  membersOf(modelId: string, groupId: string, after?: string, limit = Number.MAX_SAFE_INTEGER): string[] {
    const ids: string[] = [];
    for (const { key, value } of this.records.getRange({ start: after === undefined ? [modelId] : [modelId, idKey(after)], end: [modelId, END] })) {
      const id = String((key as Key)[1]);
      if (id === after || !value.groups.includes(groupId)) continue;
      ids.push(id);
      if (ids.length >= limit) break;
    }
    return ids;
  }

  /**
   * A page of a group's members in record order after `after` (exclusive): at most `limit`, reading at
   * most `scan` records (members live in their records, so a small group is found by reading past the
   * others); `last` is the last record read, where the next page starts, and `more` whether any is left.
   */
  membersAfter(modelId: string, groupId: string, after: string | undefined, limit: number, scan: number): { ids: string[]; last: string | undefined; more: boolean } {
    const ids: string[] = [];
    let last: string | undefined;
    let read = 0;
    for (const { key, value } of this.records.getRange({ start: after === undefined ? [modelId] : [modelId, idKey(after)], end: [modelId, END] })) {
      const id = String((key as Key)[1]);
      if (id === after) continue;
      if (read >= scan || ids.length >= limit) return { ids, last, more: true };
      read += 1;
      last = id;
      if (value.groups.includes(groupId)) ids.push(id);
    }
    return { ids, last, more: false };
  }

  aggregateOf(modelId: string, recordId: string, propertyId: string): AggregateState | undefined {
    return this.records.get([modelId, idKey(recordId)])?.aggregates[propertyId];
  }

  rowOf(sourceId: string, rowKey: string): StoredRow | undefined {
    return this.rows.get([sourceId, idKey(rowKey)]);
  }

  *rowsOf(sourceId: string): Generator<[string, StoredRow]> {
    for (const { key, value } of this.rows.getRange({ start: [sourceId], end: [sourceId, END] })) yield [String((key as Key)[1]), value];
  }

  boundaryOf(modelId: string, groupId: string, recordId: string): number | undefined {
    return this.records.get([modelId, idKey(recordId)])?.boundaries[groupId];
  }

  /** Time-index entries due at or before `now`, earliest first. */
  dueBoundaries(now: number, limit = 10_000): BoundaryEntry[] {
    const due: BoundaryEntry[] = [];
    for (const key of this.timeIndex.getKeys({ start: [0], end: [now, END], limit })) {
      const [instant, modelId, groupId, recordId] = key as [number, string, string, string | number];
      due.push({ instant, modelId, groupId, recordId: String(recordId) });
    }
    return due;
  }

  /** The earliest future boundary in the time index, if any. */
  nextBoundaryInstant(): number | undefined {
    for (const key of this.timeIndex.getKeys({ limit: 1 })) return (key as Key)[0] as number;
    return undefined;
  }

  countOf(kind: "records" | "members", id: string): number {
    return this.counters.get([kind, id]) ?? 0;
  }

  /** The models ("records") or groups ("members") the state keeps a count of, in id order. */
  countedIds(kind: "records" | "members"): string[] {
    return [...this.counters.getKeys({ start: [kind], end: [kind, "\uffff"] })].map((key) => String(key[1]));
  }

  /** The destinations with an outbox, an acknowledged state or an export result, in id order. */
  destinationIds(): string[] {
    const ids = new Set<string>();
    for (const index of [this.outbox, this.remote, this.exportResults]) {
      if (index) for (const [destination] of this.firstKeys(index as Database<unknown, Key>)) ids.add(String(destination));
    }
    return [...ids].sort();
  }

  position(stream: string): string | undefined {
    return this.positions.get(stream);
  }

  /** True for a state that has read nothing yet (no position, no record). */
  isEmpty(): boolean {
    const hasRecords = [...this.records.getKeys({ limit: 2 })].some((key) => Array.isArray(key));
    return !hasRecords && this.positions.getKeysCount({ limit: 1 }) === 0;
  }

  allPositions(): Map<string, string> {
    return new Map([...this.positions.getRange()].map(({ key, value }) => [key, value]));
  }

  outboxOf(destinationId: string, limit = 1000): OutboxEntry[] {
    return [...this.outbox.getRange({ start: [destinationId], end: [destinationId, Number.MAX_SAFE_INTEGER], limit })].map((e) => e.value);
  }

  outboxDepth(destinationId: string): number {
    return this.outboxDepths([destinationId])[0] as number;
  }

  /** Each destination's outbox depth (`outboxDepths`), with its id. */
  namedOutboxDepths(destinationIds: readonly string[]): [destinationId: string, depth: number][] {
    const depths = this.outboxDepths(destinationIds);
    return destinationIds.map((d, i) => [d, depths[i] as number]);
  }

  /**
   * Each destination's outbox depth, exactly. Counting a destination's exports walks them (about 6 ms
   * for 100,000), but LMDB keeps the entry count of the whole sub-database: when every destination
   * holding exports is one of those asked for (what the daemon asks for is its destinations), found by
   * one seek per destination holding any, the depths are that count less msgpack's structures entry,
   * and only all but one of the destinations holding exports are counted (none, with one). Otherwise
   * (exports of a destination not asked for, such as one the config dropped), each is counted.
   */
  outboxDepths(destinationIds: readonly string[], entries = this.outboxEntries()): number[] {
    const counted = () => destinationIds.map((d) => this.countOutbox(d));
    const asked = new Set(destinationIds);
    const holding: string[] = [];
    try {
      for (const [destination] of this.firstKeys(this.outbox)) {
        if (typeof destination !== "string" || !asked.has(destination)) return counted();
        holding.push(destination);
      }
    } catch {
      return counted(); // a key out of shape
    }
    const depths = new Map<string, number>();
    let rest = entries - ((this.outbox as unknown as Database<OutboxEntry, symbol>).doesExist(STRUCTURES) ? 1 : 0);
    for (let i = 0; i < holding.length - 1; i++) {
      const depth = this.countOutbox(holding[i] as string);
      depths.set(holding[i] as string, depth);
      rest -= depth;
    }
    if (rest < 0) return counted();
    if (holding.length > 0) depths.set(holding[holding.length - 1] as string, rest);
    return destinationIds.map((d) => depths.get(d) ?? 0);
  }

  /** LMDB's count of the outbox's entries: every destination's exports and msgpack's structures entry. */
  private outboxEntries(): number {
    return (this.outbox.getStats() as { entryCount: number }).entryCount;
  }

  /**
   * The first key of each range of keys sharing their first element (a model's, a source's, a
   * destination's), in key order: one seek per range. Without a `start`, lmdb-js begins after the
   * shared structures entry (a symbol key), which is never one of them. Throws on a key that is not
   * an array or that would make the seeks go round (nothing writes one).
   */
  private *firstKeys(index: Database<unknown, Key>): Generator<Key> {
    let last: Key | undefined;
    for (;;) {
      const key = [...index.getKeys({ ...(last === undefined ? {} : { start: [last[0] as string, END] }), limit: 1 })][0] as Key | undefined;
      if (key === undefined) return;
      if (!Array.isArray(key) || (last !== undefined && key[0] === last[0])) throw new Error(`a key out of shape in the state: ${String(key)}`);
      yield key;
      last = key;
    }
  }

  private countOutbox(destinationId: string): number {
    return this.outbox.getCount({ start: [destinationId], end: [destinationId, Number.MAX_SAFE_INTEGER] });
  }

  /**
   * The outbox depth of each destination, for a decision that only compares them with `floor` and
   * above. LMDB's entry count of the whole sub-database (every destination's exports, and msgpack's
   * structures entry) is an upper bound of each depth, read at once: while it is below `floor`, each
   * depth is given as that bound. Above it, the depths (`outboxDepths`), or with `count` false,
   * undefined (nothing counted).
   */
  outboxDepthsFrom(destinationIds: readonly string[], floor: number): number[];
  outboxDepthsFrom(destinationIds: readonly string[], floor: number, count: boolean): number[] | undefined;
  outboxDepthsFrom(destinationIds: readonly string[], floor: number, count = true): number[] | undefined {
    const entries = this.outboxEntries();
    if (entries < floor) return destinationIds.map(() => entries);
    return count ? this.outboxDepths(destinationIds, entries) : undefined;
  }

  /**
   * Exports ready to send, oldest first: not in flight, not waiting for a retry, and at most one per
   * record (a record's next export waits until the one before it is answered, so they arrive in order).
   */
  pendingExports(destinationId: string, limit: number, now: number, inFlight: ReadonlySet<number>, recordsInFlight: ReadonlySet<string> = new Set()): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    const taken = new Set(recordsInFlight);
    // Keys first: the exports in flight (the oldest, up to the delivery's concurrency times its batch
    // size) are passed over without decoding them.
    for (const key of this.outbox.getKeys({ start: [destinationId], end: [destinationId, Number.MAX_SAFE_INTEGER] })) {
      if (inFlight.has((key as Key)[1] as number)) continue;
      const value = this.outbox.get(key as Key);
      if (value === undefined || taken.has(value.recordId)) continue;
      taken.add(value.recordId);
      if (value.notBefore !== undefined && value.notBefore > now) continue;
      out.push(value);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The outbox of one destination, as its delivery loop reads and updates it (streams/delivery.ts's DeliveryStore). */
  outboxFor(destinationId: string): {
    pending(limit: number, now: number, inFlight: ReadonlySet<number>, recordsInFlight: ReadonlySet<string>): OutboxEntry[];
    markSending(entries: readonly OutboxEntry[]): Promise<OutboxEntry[]>;
    complete(outcomes: readonly ExportOutcome[]): Promise<Map<number, number>>;
    nextRetryAt(): number | undefined;
  } {
    return {
      pending: (limit, now, inFlight, recordsInFlight) => this.pendingExports(destinationId, limit, now, inFlight, recordsInFlight),
      markSending: async (entries) => {
        const held = new Set(await this.markSending(destinationId, entries));
        return entries.filter((e) => held.has(e.seq));
      },
      complete: (outcomes) => this.completeExports(destinationId, outcomes),
      nextRetryAt: () => this.nextRetryAt(destinationId),
    };
  }

  /**
   * Marks exports as handed to the destination (before it answers); returns the seqs still in the
   * outbox. One read before the mark may have been superseded meanwhile (a batch that committed
   * between the read and this transaction replaced or dropped it): it must not be sent, since the
   * export that replaced it was planned against the baseline it would have moved.
   */
  async markSending(destinationId: string, read: readonly Pick<OutboxEntry, "seq" | "rev">[]): Promise<number[]> {
    const held: number[] = [];
    await this.write(() => {
      for (const { seq, rev } of read) {
        const entry = this.outbox.get([destinationId, seq]);
        // Gone, or replaced in place by a newer export since it was read: the newer one goes next time.
        if (!entry || entry.rev !== rev) continue;
        held.push(seq);
        if (!entry.sending) this.outbox.put([destinationId, seq], withFields(entry, { sending: true }));
      }
    });
    await this.root.flushed;
    return held;
  }

  /** The earliest retry instant among waiting exports, if any. */
  nextRetryAt(destinationId: string): number | undefined {
    let next: number | undefined;
    const now = Date.now();
    for (const { value } of this.outbox.getRange({ start: [destinationId], end: [destinationId, Number.MAX_SAFE_INTEGER] })) {
      if (value.notBefore === undefined || value.notBefore <= now) continue;
      if (next === undefined || value.notBefore < next) next = value.notBefore;
    }
    return next;
  }

  /**
   * Records what a destination did with a batch, in one transaction: acknowledged exports leave the
   * outbox (unless a newer one already replaced them) and become the destination's known state;
   * skipped ones leave it; failed ones wait for their retry, or become dead letters. Resolves with the
   * seq of each dead letter made, by the seq of its export (the API and the CLI name a letter by its own).
   */
  async completeExports(destinationId: string, outcomes: readonly ExportOutcome[]): Promise<Map<number, number>> {
    const lettered = new Map<number, number>();
    await this.write(() => {
      lettered.clear();
      const seqs = new Map<string, number>();
      const now = Date.now();
      for (const { entry, status, message, retryAt, mayHaveLanded } of outcomes) {
        const current = this.outbox.get([destinationId, entry.seq]);
        const attempts = (current?.attempts ?? entry.attempts ?? 0) + (status === "error" ? 1 : 0);
        const result: ExportResultEntry = { status: status === "error" ? (retryAt === undefined ? "dead_letter" : "retry") : status, at: now, seq: entry.seq, attempts, toDelete: entry.toDelete, ...(message ? { message } : {}) };
        if (current) this.exportResults?.put([destinationId, idKey(entry.recordId)], result);
        const remove = () => {
          if (!current) return;
          this.outbox.remove([destinationId, entry.seq]);
          const byRecord = [destinationId, idKey(entry.recordId)];
          if (this.outboxByRecord.get(byRecord) === entry.seq) this.outboxByRecord.remove(byRecord);
        };
        if (!current) {
          // No longer queued: another delivery loop completed it already (one of the config before a
          // reload whose send outlived its stop), or its destination's state was dropped (a Run). What
          // the destination holds was recorded then; this answer is older news.
        } else if (status === "ok") {
          if (entry.toDelete) this.remote.remove([destinationId, idKey(entry.recordId)]);
          else this.remote.put([destinationId, idKey(entry.recordId)], { properties: entry.newRecordProperties, groups: entry.newGroups });
          remove();
        } else if (status === "info") {
          remove();
        } else if (retryAt === undefined) {
          const seq = this.nextSeq(seqs, "dead-letters");
          const letter: StoredExportDeadLetter = { seq, at: Date.now(), kind: "export", destinationId, reason: message ?? "rejected", entry: withFields(current, { lastError: message }) };
          this.deadLetters.put([seq], letter);
          lettered.set(entry.seq, seq);
          remove();
        } else {
          // Failed, to be retried. Rejected by the destination's own answer, it did not land: unsent
          // again, so a newer export may replace it. Without an answer (a timeout, a connection lost
          // after the request left), now or at an earlier attempt, it may have landed: it stays as
          // being sent, and a newer export queues behind it, planned against what it carries, rather
          // than replacing it against a baseline it may have moved.
          const uncertain = mayHaveLanded === true || current.mayHaveLanded === true;
          this.outbox.put(
            [destinationId, entry.seq],
            withFields(current, {
              sending: uncertain,
              ...(uncertain ? { mayHaveLanded: true } : {}),
              attempts: (current.attempts ?? 0) + 1,
              notBefore: retryAt,
              ...(message ? { lastError: message } : {}),
            }),
          );
        }
      }
      for (const [name, seq] of seqs) this.meta.put(`seq:${name}`, seq);
    });
    await this.root.flushed;
    return lettered;
  }

  /**
   * Re-queues the records behind the dead-lettered exports of a destination that `select` picks (by
   * when they were dead-lettered, or by seq): each gets a fresh export planned by `replan` from the record as it is now against what
   * the destination acknowledged, so an old letter never pushes stale values over newer ones. A record
   * with an export already queued is left to it. Returns how many exports were queued.
   */
  async requeueExports(destinationId: string, select: (letter: StoredExportDeadLetter) => boolean, replan: (recordId: string, remote: RemoteState | null) => ExportPlan | null): Promise<number> {
    let count = 0;
    await this.write(() => {
      const seqs = new Map<string, number>();
      const done = new Set<string>();
      for (const { value } of this.deadLetters.getRange()) {
        if (value.kind !== "export" || value.destinationId !== destinationId || !select(value)) continue;
        // By the key it was written with: getRange hands a one-element key [seq] back as seq, which
        // names another key, so removing by it left every re-queued letter in place.
        this.deadLetters.remove([value.seq]);
        const recordId = value.entry.recordId;
        if (done.has(recordId) || this.outboxByRecord.get([destinationId, idKey(recordId)]) !== undefined) continue;
        done.add(recordId);
        const remote = this.remote.get([destinationId, idKey(recordId)]) ?? null;
        const plan = replan(recordId, remote);
        if (!plan) continue;
        const seq = this.nextSeq(seqs, `outbox:${destinationId}`);
        this.outbox.put([destinationId, seq], withFields(plan, { seq, base: remote }));
        this.outboxByRecord.put([destinationId, idKey(recordId)], seq);
        count += 1;
      }
      for (const [name, seq] of seqs) this.meta.put(`seq:${name}`, seq);
    });
    await this.root.flushed;
    return count;
  }

  /** The record holding a unique value (its key as the core writes it: core/apply.ts uniqueValueKey). */
  recordIdByUnique(modelId: string, propertyId: string, valueKey: string): string | undefined {
    return this.unique.get([modelId, propertyId, idKey(valueKey)]);
  }

  /** The export of a record waiting in a destination's outbox, if any. */
  queuedExportOf(destinationId: string, recordId: string): OutboxEntry | undefined {
    const seq = this.outboxByRecord.get([destinationId, idKey(recordId)]);
    return seq === undefined ? undefined : this.outbox.get([destinationId, seq]);
  }

  /** The destination's last answer for a record's export. */
  exportResultOf(destinationId: string, recordId: string): ExportResultEntry | undefined {
    return this.exportResults?.get([destinationId, idKey(recordId)]);
  }

  /** Up to `limit` exports of a destination's outbox after seq `after` (exclusive), oldest first, those `keep` accepts. */
  outboxAfter(destinationId: string, after: number | undefined, limit: number, keep: (entry: OutboxEntry) => boolean = () => true, scan = Number.MAX_SAFE_INTEGER): { entries: OutboxEntry[]; last: number | undefined; more: boolean } {
    const entries: OutboxEntry[] = [];
    let last: number | undefined;
    let read = 0;
    for (const { value } of this.outbox.getRange({ start: [destinationId, after === undefined ? 0 : after + 1], end: [destinationId, Number.MAX_SAFE_INTEGER] })) {
      if (read >= scan || entries.length >= limit) return { entries, last, more: true };
      read += 1;
      last = value.seq;
      if (keep(value)) entries.push(value);
    }
    return { entries, last, more: false };
  }

  /** The oldest export waiting in a destination's outbox. */
  oldestExport(destinationId: string): OutboxEntry | undefined {
    for (const { value } of this.outbox.getRange({ start: [destinationId], end: [destinationId, Number.MAX_SAFE_INTEGER], limit: 1 })) return value;
    return undefined;
  }

  deadLetterOf(seq: number): StoredDeadLetter | undefined {
    return this.deadLetters.get([seq]);
  }

  /** Whether the store holds a dead letter of this source or destination (one the config no longer has keeps its letters). */
  hasDeadLettersOf(component: string): boolean {
    return this.deadLetterTally().some((t) => t.component === component);
  }

  /**
   * How many dead letters the state holds, by kind and by the source or destination that set them
   * aside. Kept per Store and brought up to date by reading only the letters added since (their seqs
   * only grow), so that a status asked for every few seconds over a state holding millions of letters
   * (a flood of undecodable messages) does not decode them all each time: the letters are counted
   * again only when some were removed (replayed, retried, deleted), which the count of keys (read
   * natively, without the values, in the same read snapshot) tells.
   */
  deadLetterTally(): DeadLetterTally[] {
    const total = this.deadLetters.getKeysCount();
    const cached = this.letterTally;
    const counts = new Map<string, DeadLetterTally>();
    for (const [key, t] of cached?.counts ?? []) counts.set(key, { ...t });
    let count = cached?.count ?? 0;
    let last = cached?.last ?? 0;
    const add = (letter: StoredDeadLetter) => {
      const component = letter.kind === "export" ? letter.destinationId : letter.sourceId;
      const key = `${letter.kind}\u0000${component}`;
      const entry = counts.get(key) ?? { kind: letter.kind, component, count: 0 };
      entry.count += 1;
      counts.set(key, entry);
      count += 1;
      last = Math.max(last, letter.seq);
    };
    if (cached) for (const { value } of this.deadLetters.getRange({ start: [cached.last + 1] })) add(value);
    if (!cached || count !== total) {
      counts.clear();
      count = 0;
      last = 0;
      for (const { value } of this.deadLetters.getRange()) add(value);
    }
    this.letterTally = { count, last, counts };
    return [...counts.values()].map((t) => ({ ...t }));
  }

  /**
   * Dead letters after seq `after` (exclusive), oldest first, those `keep` accepts, at most `limit`;
   * at most `scan` are read, and `last` is the seq of the last one read (where the next page starts).
   */
  deadLettersAfter(after: number | undefined, limit: number, keep: (letter: StoredDeadLetter) => boolean = () => true, scan = Number.MAX_SAFE_INTEGER): { letters: StoredDeadLetter[]; last: number | undefined; more: boolean } {
    const letters: StoredDeadLetter[] = [];
    let last: number | undefined;
    let read = 0;
    for (const { value } of this.deadLetters.getRange({ start: [after === undefined ? 0 : after + 1] })) {
      if (read >= scan || letters.length >= limit) return { letters, last, more: true };
      read += 1;
      last = value.seq;
      if (keep(value)) letters.push(value);
    }
    return { letters, last, more: false };
  }

  remoteOf(destinationId: string, recordId: string): RemoteState | undefined {
    return this.remote.get([destinationId, idKey(recordId)]);
  }

  listDeadLetters(limit = 1000): StoredDeadLetter[] {
    return [...this.deadLetters.getRange({ limit })].map((e) => e.value);
  }

  /** The newest `limit` dead letters, oldest first. */
  recentDeadLetters(limit: number): StoredDeadLetter[] {
    return [...this.deadLetters.getRange({ reverse: true, limit })].map((e) => e.value).reverse();
  }

  /** Dead letters of sources: undecodable messages and changes the core could not apply. */
  sourceDeadLetters(limit = 1000): (DeadLetter & { seq: number; at: number })[] {
    return this.listDeadLetters(limit).filter((l): l is DeadLetter & { seq: number; at: number } => l.kind !== "export");
  }

  exportDeadLetters(limit = 1000): StoredExportDeadLetter[] {
    return this.listDeadLetters(limit).filter((l): l is StoredExportDeadLetter => l.kind === "export");
  }

  /** Meta entries whose keys start with `prefix`, in key order. */
  metaWithPrefix<T>(prefix: string): T[] {
    return [...this.meta.getRange({ start: prefix, end: `${prefix}\uffff` })].map((e) => e.value as T);
  }

  getMeta<T>(key: string): T | undefined {
    return this.meta.get(key) as T | undefined;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    await this.write(() => void this.meta.put(key, value));
    await this.root.flushed;
  }

  async close(): Promise<void> {
    await this.root.close();
    this.lock?.release();
  }
}
