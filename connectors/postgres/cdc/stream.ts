// The replication stream: pgoutput messages decoded by pg-logical-replication and turned into changes
// in stream order. Every change carries as its position the end of the last transaction received
// whole (a change's own LSN can be older than earlier commits when transactions interleave), so
// positions only move forward; every commit moves it to its own end. A message that cannot be decoded,
// or not be made sense of, becomes a dead letter at that position instead of stopping the stream.
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from "pg-logical-replication";
import type { Logger } from "pino";
import { rowKey, type Change, type Row, type SourcePosition } from "../../../core/change.js";
import type { PostgresAppSettings } from "../settings.js";
import { compareLsn, normalizeLsn } from "../settings.js";
import type { CapturedTable } from "./slot.js";

const UNDECODABLE = "undecodable";

/** What the wrapped plugin returns for a message it could not decode. */
interface Undecodable {
  tag: typeof UNDECODABLE;
  reason: string;
  bytes: string;
}

/** A decoded message as plain data (bigints as text), safe to store with a dead letter. */
function plain(message: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(message, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value))) as unknown;
  } catch {
    return String(message);
  }
}

/** A replication service and a pgoutput plugin whose undecodable messages come out as data, not exceptions. */
export function openReplication(settings: PostgresAppSettings): { service: LogicalReplicationService; plugin: PgoutputPlugin } {
  // Opening is bounded: a stop waits for the replication connection to open or fail (source.ts).
  const service = new LogicalReplicationService({ connectionTimeoutMillis: 10_000, ...settings.connection }, {
    acknowledge: { auto: false, timeoutSeconds: 0 },
    flowControl: { enabled: false },
  });
  // messages: true delivers pg_logical_emit_message() heartbeats, which need no table.
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [settings.publication], messages: true });
  // A message the plugin cannot decode must not throw inside the socket's data handler (it would
  // crash the process): it becomes an undecodable message, and a dead letter.
  const parse = plugin.parse.bind(plugin);
  plugin.parse = (buffer: Buffer) => {
    try {
      return parse(buffer);
    } catch (error) {
      return { tag: UNDECODABLE, reason: error instanceof Error ? error.message : String(error), bytes: Buffer.from(buffer).toString("base64") } as unknown as Pgoutput.Message;
    }
  };
  return { service, plugin };
}

/** The prefix of the logical messages that bracket a re-read chunk (DBLog's low and high watermarks). */
export const WATERMARK_PREFIX = "grouparoo_stream_watermark";

/**
 * One chunk of a re-read between its low and high watermarks: keys of its table that change in the
 * stream inside that window are dropped from the chunk (the streamed change is newer), and at the high
 * watermark the rest of the chunk enters the stream, followed by the Run's progress marker.
 */
export interface ChunkWindow {
  /** `<runId>/<chunk>`: what the watermark messages carry. */
  id: string;
  table: string;
  sourceId: string;
  keyColumns: readonly string[];
  /** The chunk's rows, set once read (before the high watermark is written). */
  rows: readonly Row[];
  /** The progress marker emitted after the rows: its stream (run:<id>) and position. */
  progress: { stream: string; position: string };
  open: boolean;
  changed: Set<string>;
  truncated: boolean;
  /** Called once the chunk's rows are in the stream. */
  done(): void;
  /** Called when the stream was moved past the chunk's watermarks (they never come): it is read again. */
  skipped(): void;
}

/** Turns the messages of one replication stream into changes, in stream order. */
export class PgoutputChanges {
  /** The re-read chunk waiting for its watermarks, if any. */
  window: ChunkWindow | undefined;
  /**
   * Sources being read again, with their re-read's mark: every row of theirs that the re-read reads
   * or that streams in meanwhile carries it (as `snapshotId`), so that when the re-read completes
   * the rows without it, gone from the table while nothing saw them go, are removed (a sweep, as at
   * the end of a snapshot). Set from the re-read's start (or from its stored progress at a restart,
   * before anything streams) to its end.
   */
  readonly rereading = new Map<string, string>();
  /** The end of the last transaction received whole: the position every change carries. */
  committedLsn: string;
  private at: SourcePosition | undefined;
  private commitTime = Date.now();
  private readonly bySource = new Map<string, string[]>();
  private readonly firstSourceId: string;
  /**
   * Each captured table's primary key in its declared order (set as the source prepares): pgoutput
   * lists key columns in the table's column order, and a record id joins them in the key's order, as
   * the snapshot, re-reads and Debezium do.
   */
  keyOrder = new Map<string, readonly string[]>();
  /**
   * The partitions of captured partitioned tables, each to its captured table: a publication that does
   * not publish via the root sends a partition's changes under the partition's name (set as the source
   * prepares, and when a partition is added).
   */
  partitionOf = new Map<string, string>();
  /** Told when some partitions of a captured partitioned table were truncated, not all (its sources are read again). */
  partitionsTruncated: ((table: string, partitions: readonly string[]) => void) | undefined;
  /** Counts the times keyOrder changed: a relation found before is found again with the new one. */
  keyOrders = 0;
  /**
   * What each relation the stream announced stands for, found once per relation (pgoutput's parser keeps
   * one relation object until the table's next Relation message): its table's name, its key columns in
   * the key's order, and the sources reading it.
   */
  private readonly relations = new WeakMap<Pgoutput.MessageRelation, RelationInfo>();

  constructor(
    private readonly stream: string,
    tables: readonly CapturedTable[],
    resumedLsn: string,
    private readonly withoutExcluded: (table: string, row: Row) => Row,
    private readonly emit: (change: Change) => void,
    private readonly logger: Logger,
  ) {
    this.committedLsn = resumedLsn;
    for (const t of tables) this.bySource.set(t.table, [...(this.bySource.get(t.table) ?? []), t.sourceId]);
    this.firstSourceId = tables[0]?.sourceId ?? "";
  }

  /** A change that carries only a position (a commit, a keepalive, a dead letter). */
  private marker(position: string, commitTime: number, deadLetter?: Change["deadLetter"]): Change {
    const streamPosition = { stream: this.stream, position };
    // Two literals rather than a spread of an optional key (V8 builds a literal with a spread slowly).
    return deadLetter
      ? { sourceId: this.firstSourceId, op: "marker", key: "", before: null, after: null, position: streamPosition, commitTime, deadLetter }
      : { sourceId: this.firstSourceId, op: "marker", key: "", before: null, after: null, position: streamPosition, commitTime };
  }

  /** One message as the service delivers it; never throws (what it cannot handle is a dead letter). */
  receive(rawLsn: string, message: Pgoutput.Message | Undecodable): void {
    try {
      if (message.tag === UNDECODABLE) {
        const lsn = normalizeLsn(rawLsn);
        this.deadLetter(lsn, `pgoutput message at ${lsn} could not be decoded: ${message.reason}`, { lsn, bytes: message.bytes });
      } else this.handle(rawLsn, message);
    } catch (error) {
      // Bad input never stops the stream nor vanishes: the message goes to the dead letters at the
      // position of the last whole transaction (which stays unconfirmed until that is durable).
      const reason = error instanceof Error ? error.message : String(error);
      const lsn = normalizeLsn(rawLsn);
      this.deadLetter(lsn, `postgres-cdc could not handle the ${message.tag} message at ${lsn}: ${reason}`, { lsn, message: plain(message) });
    }
  }

  /**
   * The relation's table, its key columns, and the sources reading it. The key is the table's primary
   * key whenever it has one, whatever its replica identity (FULL flags every column as a key column,
   * USING INDEX the index's): a record's id is the same however its row was read. A table without one
   * is keyed by its replica identity's columns.
   */
  private relation(relation: Pgoutput.MessageRelation): RelationInfo {
    let known = this.relations.get(relation);
    if (known === undefined || known.keyOrders !== this.keyOrders) {
      const name = `${relation.schema}.${relation.name}`;
      // A partition's rows are its partitioned table's (which the sources name), keyed by its key.
      const root = this.partitionOf.get(name);
      const table = root ?? name;
      const declared = this.keyOrder.get(table);
      const keyColumns = declared !== undefined && declared.length > 0 ? declared : relation.keyColumns;
      const identity = relation.keyColumns.join(", ") || "none";
      known = { table, keyColumns, identity, keyInOld: keyColumns.every((c) => relation.keyColumns.includes(c)), sourceIds: this.sourcesOf(name), keyOrders: this.keyOrders };
      this.relations.set(relation, known);
    }
    return known;
  }

  /** The sources reading a table the stream names: its own, and its partitioned table's if it is a partition. */
  private sourcesOf(name: string): readonly string[] {
    const root = this.partitionOf.get(name);
    const own = this.bySource.get(name) ?? [];
    return root === undefined ? own : [...own, ...(this.bySource.get(root) ?? [])];
  }

  /**
   * The stream's position now, one object for every change of a transaction (a change's position is
   * read-only): a new one only once the committed LSN moved.
   */
  private position(): SourcePosition {
    if (this.at?.position !== this.committedLsn) this.at = { stream: this.stream, position: this.committedLsn };
    return this.at;
  }

  /** A keepalive's sent position, once everything before it is durable: a marker that lets the slot advance. */
  idleAt(sent: string): void {
    this.committedLsn = sent;
    this.emit(this.marker(sent, Date.now()));
  }

  /** A row of a source being read again, with the re-read's mark (see `rereading`). */
  private marked(change: Change): Change {
    if (this.rereading.size === 0) return change;
    const mark = this.rereading.get(change.sourceId);
    return mark === undefined ? change : Object.assign({}, change, { snapshotId: mark });
  }

  /** A watermark of the chunk waiting: the low one opens its window, the high one puts its rows in the stream. */
  private watermark(content: string): void {
    const window = this.window;
    const [mark, id] = [content.slice(0, content.indexOf(" ")), content.slice(content.indexOf(" ") + 1)];
    if (!window || window.id !== id) return;
    if (mark === "low") {
      window.open = true;
      return;
    }
    if (mark !== "high" || !window.open) return;
    this.window = undefined;
    if (!window.truncated) {
      for (const row of window.rows) {
        const key = rowKey(window.keyColumns, row);
        if (window.changed.has(key)) continue;
        const after = this.withoutExcluded(window.table, row);
        this.emit(this.marked({ sourceId: window.sourceId, op: "snapshot", key, before: null, after, position: this.position(), commitTime: this.commitTime }));
      }
    }
    this.emit({ sourceId: window.sourceId, op: "marker", key: "", before: null, after: null, position: window.progress, commitTime: this.commitTime });
    window.done();
  }

  private deadLetter(lsn: string, reason: string, payload: unknown): void {
    this.logger.error({ lsn, reason }, "postgres-cdc message set aside as a dead letter");
    this.emit(this.marker(this.committedLsn, this.commitTime, { reason, payload }));
  }

  /** `rawLsn` as pg-logical-replication gives it (zero-padded): normalised only where it is kept. */
  private handle(rawLsn: string, message: Pgoutput.Message): void {
    switch (message.tag) {
      case "begin":
        this.commitTime = Number(BigInt(message.commitTime.toString()) / 1000n);
        return;
      case "commit": {
        // Every commit moves the stream to its end: once durable, everything committed up to there
        // is applied (transactions arrive in commit order), so that is what the slot may confirm.
        // pg-logical-replication pads the LSNs it decodes (00000000/01E59C90): Postgres's X/Y instead.
        const end = normalizeLsn(message.commitEndLsn ?? rawLsn);
        if (compareLsn(end, this.committedLsn) > 0) this.committedLsn = end;
        this.emit(this.marker(this.committedLsn, this.commitTime));
        return;
      }
      case "message":
        if (message.prefix === WATERMARK_PREFIX) this.watermark(Buffer.from(message.content).toString("utf8"));
        return;
      case "insert":
      case "update":
      case "delete": {
        const relation = this.relation(message.relation);
        const { table, keyColumns, sourceIds } = relation;
        const after = message.tag === "delete" ? null : this.withoutExcluded(table, message.new);
        // The old row (REPLICA IDENTITY FULL) or its old key (a delete, an update that changed it).
        const before = message.tag === "insert" ? null : (message.old ?? message.key ?? null);
        if (message.tag === "delete" && !carriesKey(relation, before)) {
          const lsn = normalizeLsn(rawLsn);
          this.deadLetter(lsn, `a delete on ${table} at ${lsn} names no primary key (${keyColumns.join(", ")}): its replica identity sends ${relation.identity}, so the row's record cannot be found; set REPLICA IDENTITY DEFAULT or FULL on the table`, { lsn, message: plain(message) });
          return;
        }
        const key = rowKey(keyColumns, after ?? before ?? {});
        // An update that changed the key: the row under its old key is deleted and the new one inserted
        // (as Debezium sends it, and as a fresh daemon finds the table), in one change. pgoutput sends the old key only
        // then, or the old row with every update (FULL).
        const oldKey = message.tag === "update" && before !== null && after !== null && carriesKey(relation, before) && !sameValues(keyColumns, before, after) ? rowKey(keyColumns, before) : key;
        if (this.window?.open && this.window.table === table) {
          this.window.changed.add(key);
          this.window.changed.add(oldKey);
        }
        for (const sourceId of sourceIds) {
          if (oldKey !== key) {
            // One change (movedFrom): the values the update did not send (unchanged TOAST values under
            // REPLICA IDENTITY DEFAULT) are the moved row's, which the core has (a relay splits it).
            this.emit(this.marked({ sourceId, op: "insert", key, before, after, position: this.position(), commitTime: this.commitTime, movedFrom: oldKey }));
          } else {
            const change: Change = { sourceId, op: message.tag, key, before, after, position: this.position(), commitTime: this.commitTime };
            this.emit(after === null ? change : this.marked(change));
          }
        }
        return;
      }
      case "truncate": {
        const names = message.relations.map((relation) => `${relation.schema}.${relation.name}`);
        for (const name of names) {
          if (this.window?.open && (this.window.table === name || this.window.table === this.partitionOf.get(name))) this.window.truncated = true;
          for (const sourceId of this.bySource.get(name) ?? []) {
            this.emit({ sourceId, op: "truncate", key: "", before: null, after: null, position: this.position(), commitTime: this.commitTime });
          }
        }
        // Partitions truncated: every partition of a captured partitioned table (a TRUNCATE of that
        // table) truncates its sources; some of them only cannot be told apart by row here, so its
        // sources are read again (the re-read's sweep removes the rows those partitions held).
        const roots = new Set(names.flatMap((name) => this.partitionOf.get(name) ?? []));
        for (const root of roots) {
          const leaves = [...this.partitionOf].filter(([, r]) => r === root).map(([leaf]) => leaf);
          if (leaves.every((leaf) => names.includes(leaf))) {
            for (const sourceId of this.bySource.get(root) ?? []) {
              this.emit({ sourceId, op: "truncate", key: "", before: null, after: null, position: this.position(), commitTime: this.commitTime });
            }
          } else this.partitionsTruncated?.(root, names.filter((name) => this.partitionOf.get(name) === root));
        }
        return;
      }
      default:
        return;
    }
  }
}

interface RelationInfo {
  table: string;
  keyColumns: readonly string[];
  /** The columns its replica identity sends of an old row, for messages. */
  identity: string;
  /** Whether its replica identity sends every key column of an old row (else checked per row). */
  keyInOld: boolean;
  sourceIds: readonly string[];
  /** The key orders it was found with (PgoutputChanges.keyOrders): found again once they change. */
  keyOrders: number;
}

/** Whether two rows hold the same values in these columns (by identity: a Date's key is compared as text then). */
function sameValues(columns: readonly string[], a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  for (const column of columns) if (a[column] !== b[column]) return false;
  return true;
}

/** Whether an old row (or old key) pgoutput sent holds every key column. */
function carriesKey(relation: RelationInfo, before: Readonly<Record<string, unknown>> | null): boolean {
  if (before === null) return false;
  if (relation.keyInOld) return true;
  for (const column of relation.keyColumns) if (before[column] === undefined) return false;
  return true;
}

export type { Undecodable };
