// postgres-cdc: one logical replication stream (one slot, pgoutput) per postgres app, covering all
// of its postgres-cdc sources. Creates the publication and slot when missing, reads an initial
// snapshot in the slot's exported snapshot (no gap, no double), then streams from the slot's
// consistent point. The slot's confirmed_flush_lsn only moves to LSNs the core reports durable:
// pg-logical-replication's own acknowledgement timer is off (timeoutSeconds: 0, its issue 174) and
// keepalives that ask for a reply are answered with the last durable LSN.
import { Observable, type Subscriber } from "rxjs";
import pg from "pg";
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from "pg-logical-replication";
import type { Logger } from "pino";
import { readDebezium, qualifyTable } from "../../daemon/config/debezium.js";
import type { AppConfig, SourceConfig } from "../../daemon/config/schema.js";
import type { Located } from "../../daemon/config/validate.js";
import type { Change, Row } from "../../streams/change.js";
import type { SourceConnector, SourceContext, SourceObserver, SourcePlugin } from "../types.js";
import { quoteIdent, quoteTable, withClient } from "./introspect.js";
import { PauseGate } from "../pause.js";
import { compareLsn, previousLsn, resolvePostgresApp, type PostgresAppSettings } from "./settings.js";

const SNAPSHOT_CHUNK = 1000;
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

interface SourceTable {
  sourceId: string;
  table: string;
}

/** The slot is gone (dropped or invalidated) after this state read from it: not retried. */
export class SlotLostError extends Error {
  readonly code = "REPLICATION_SLOT_LOST";
}

export class PostgresCdcSource implements SourceConnector {
  readonly appId: string;
  readonly stream: string;
  private readonly settings: PostgresAppSettings;
  private readonly tables: SourceTable[];
  private readonly logger: Logger;
  private readonly positions: ReadonlyMap<string, string>;
  private readonly observer: SourceObserver | undefined;
  private service: LogicalReplicationService | undefined;
  private subscriber: Subscriber<Change> | undefined;
  private connected = false;
  private stopped = false;
  private readonly gate = new PauseGate();
  private pausedKeepalive: NodeJS.Timeout | undefined;
  private warnedNoSocket = false;
  /** column.exclude.list, compiled once. */
  private excluded: RegExp[] | undefined;
  /** The highest LSN whose changes are durable in the state; the only LSN ever acknowledged. */
  private durableLsn = "0/0";
  /** The LSN of the last change handed to the core (durable once durableLsn reaches it). */
  private lastEmittedLsn = "0/0";
  /**
   * The end of the last transaction received whole. Changes carry it as their position (a change's own
   * LSN can be older than earlier commits when transactions interleave), so positions only move forward.
   */
  private committedLsn = "0/0";
  private commitTime = Date.now();
  private stoppedPromise: Promise<void> | undefined;
  /** Set once publication and slot were prepared in this process (reconnects do not snapshot again). */
  private prepared = false;
  private requestStop: () => void = () => undefined;
  private readonly stopRequested = new Promise<void>((resolve) => (this.requestStop = resolve));

  constructor(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext) {
    if (app.type !== "postgres") throw new Error(`postgres-cdc needs a postgres app, not ${app.type}`);
    this.appId = app.id;
    this.stream = `postgres:${app.id}`;
    const debezium = app.options.debezium ? readDebezium(app.options.debezium).settings : undefined;
    this.settings = resolvePostgresApp(app.id, app.options, debezium);
    this.tables = sources.flatMap((s) => (s.type === "postgres-cdc" ? [{ sourceId: s.id, table: qualifyTable(s.options.table) }] : []));
    this.logger = context.logger;
    this.positions = context.positions;
    this.observer = context.observer;
    const resumed = context.positions.get(this.stream);
    if (resumed) {
      this.durableLsn = resumed;
      this.committedLsn = resumed;
    }
  }

  changes(): Observable<Change> {
    return new Observable<Change>((subscriber) => {
      this.subscriber = subscriber;
      this.stoppedPromise = this.runLoop(subscriber).then(
        () => subscriber.complete(),
        (error: Error) => subscriber.error(error),
      );
      return () => {
        this.stopped = true;
      };
    });
  }

  ready(): boolean {
    return this.connected && !this.stopped;
  }

  /**
   * Confirms exactly `lsn` to the server: every position here is an LSN that may be confirmed as is
   * (a change's own start, a commit's end, a keepalive's sent position). pg-logical-replication sends
   * the LSN it is given plus one, which past a commit's end would skip a transaction that starts there.
   */
  private confirm(lsn: string): Promise<boolean> {
    return this.service?.acknowledge(previousLsn(lsn)) ?? Promise.resolve(false);
  }

  pause(): void {
    if (this.gate.pause()) this.pauseSocket(true);
  }

  resume(): void {
    if (this.gate.resume()) this.pauseSocket(false);
  }

  /**
   * Flow control of the stream: its socket stops being read (what was already received is still
   * emitted, a bounded overshoot). Unread keepalive requests go unanswered meanwhile, so a status
   * update with the durable LSN every 10 s keeps wal_sender_timeout from dropping us.
   * pg-logical-replication's own flow control (its `flowControl` option) pauses the same socket, but
   * queues every message behind two awaits, which costs more than decoding it.
   */
  private pauseSocket(paused: boolean): void {
    const connection = (this.service as unknown as { _connection?: { stream?: { pause?: () => void; resume?: () => void } } } | undefined)?._connection;
    if (connection && typeof connection.stream?.pause !== "function" && !this.warnedNoSocket) {
      this.warnedNoSocket = true;
      this.logger.warn("the replication connection exposes no socket to pause (pg-logical-replication changed?): backpressure cannot stop the stream");
    }
    if (paused) {
      connection?.stream?.pause?.();
      this.pausedKeepalive ??= setInterval(() => void this.confirm(this.durableLsn).catch(() => undefined), 10_000).unref();
    } else {
      connection?.stream?.resume?.();
      if (this.pausedKeepalive) clearInterval(this.pausedKeepalive);
      this.pausedKeepalive = undefined;
    }
  }

  async acknowledge(positions: ReadonlyMap<string, string>): Promise<void> {
    const lsn = positions.get(this.stream);
    if (!lsn || compareLsn(lsn, this.durableLsn) <= 0) return;
    this.durableLsn = lsn;
    await this.confirm(lsn).catch((error: Error) => this.logger.warn({ err: error }, "acknowledging the slot failed; it is retried with the next batch"));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.requestStop();
    this.resume();
    this.gate.wake();
    if (this.pausedKeepalive) clearInterval(this.pausedKeepalive);
    await this.service?.stop().catch(() => undefined);
    await this.stoppedPromise;
  }

  /** Holds the snapshot reader while paused (status updates meanwhile come from pauseSocket's timer). */
  private waitWhilePaused(): Promise<void> {
    return this.gate.wait(() => this.stopped);
  }

  private emit(change: Change): void {
    if (change.position.stream === this.stream) this.lastEmittedLsn = change.position.position;
    this.subscriber?.next(change);
  }

  private async runLoop(subscriber: Subscriber<Change>): Promise<void> {
    let delay = 500;
    while (!this.stopped && !subscriber.closed) {
      try {
        await this.prepare();
        if (this.stopped) break;
        await this.stream_();
        delay = 500;
      } catch (error) {
        this.connected = false;
        if (this.stopped) break;
        if (error instanceof SlotLostError) throw error;
        this.logger.error({ err: error, retryInMs: delay }, "postgres replication failed; reconnecting");
        await Promise.race([new Promise((r) => setTimeout(r, delay)), this.stopRequested]);
        delay = Math.min(delay * 2, 30_000);
      }
    }
    this.connected = false;
  }

  private withClient<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
    return withClient(this.settings.connection, use);
  }

  /** Publication and slot: created when missing; the initial snapshot when the mode asks for one. */
  private async prepare(): Promise<void> {
    const { publication, slot, publicationAutocreateMode, snapshot } = this.settings;
    const slotExists = await this.withClient(async (client) => {
      const pub = await client.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
      if (pub.rowCount === 0) {
        if (publicationAutocreateMode === "disabled") throw new Error(`publication ${publication} does not exist and publication.autocreate.mode is disabled`);
        const target = publicationAutocreateMode === "all_tables" ? "ALL TABLES" : `TABLE ${this.tables.map((t) => quoteTable(t.table)).join(", ")}`;
        await client.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR ${target}`);
        this.logger.info({ publication }, "created publication");
      } else if (publicationAutocreateMode === "filtered") {
        const { rows } = await client.query<{ t: string }>(`SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1`, [publication]);
        const missing = this.tables.filter((t) => !rows.some((r) => r.t === t.table));
        if (missing.length > 0) await client.query(`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${missing.map((t) => quoteTable(t.table)).join(", ")}`);
      }
      const found = await client.query<{ active: boolean; wal_status: string | null }>(`SELECT active, wal_status FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
      const row = found.rows[0];
      if (row?.wal_status === "lost") {
        if (snapshot !== "when_needed") throw new SlotLostError(`replication slot ${slot} is invalidated (wal_status lost): changes were lost; use snapshot.mode when_needed to take a new snapshot, or reset the state`);
        await client.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
        this.logger.warn({ slot }, "the replication slot was invalidated: dropped it to take a new snapshot (when_needed)");
        return false;
      }
      return row !== undefined;
    });

    const snapshotStream = `${this.stream}:snapshot`;
    // After the first successful preparation (a reconnect), the snapshot this process took counts as done.
    const snapshotDone = this.prepared || this.positions.get(snapshotStream)?.startsWith("complete:") === true;
    const streamedBefore = this.prepared || this.positions.has(this.stream) || snapshotDone;
    if (!slotExists && streamedBefore && snapshot !== "when_needed" && snapshot !== "always") {
      throw new SlotLostError(`replication slot ${slot} no longer exists but this state has read from it: changes since then are lost; use snapshot.mode when_needed to take a new snapshot, or reset the state`);
    }
    const wantsSnapshot =
      (snapshot === "always" && !this.prepared) ||
      ((snapshot === "initial" || snapshot === "initial_only" || snapshot === "when_needed" || snapshot === "always") && (!slotExists || !snapshotDone));
    if (slotExists && !wantsSnapshot) {
      this.prepared = true;
      return;
    }
    if (slotExists) {
      // A slot without a completed snapshot behind it (or snapshot.mode always): start over from a new slot.
      await this.withClient((client) => client.query(`SELECT pg_drop_replication_slot($1)`, [slot]));
      this.logger.warn({ slot }, "dropped the replication slot to take a new consistent snapshot");
    }
    await this.createSlot(wantsSnapshot, snapshotStream);
    this.prepared = true;
  }

  private async createSlot(withSnapshot: boolean, snapshotStream: string): Promise<void> {
    const { slot } = this.settings;
    const replication = new pg.Client({ ...this.settings.connection, replication: "database" } as pg.ClientConfig);
    replication.on("error", () => undefined);
    await replication.connect();
    try {
      const created = await replication.query<{ consistent_point: string; snapshot_name: string | null }>(
        `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT '${withSnapshot ? "export" : "nothing"}')`,
      );
      const { consistent_point: consistentPoint, snapshot_name: snapshotName } = created.rows[0] ?? { consistent_point: "0/0", snapshot_name: null };
      this.logger.info({ slot, consistentPoint, snapshot: withSnapshot }, "created replication slot");
      if (withSnapshot && snapshotName) {
        // The exported snapshot lives as long as this replication connection stays open and idle.
        await this.readSnapshot(snapshotName, consistentPoint, snapshotStream);
      }
    } finally {
      await replication.end();
    }
  }

  private async readSnapshot(snapshotName: string, consistentPoint: string, snapshotStream: string): Promise<void> {
    await this.withClient(async (client) => {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName}'`);
      const started = Date.now();
      let rows = 0;
      for (const { sourceId, table } of this.tables) {
        const keys = await client.query<{ attname: string }>(
          `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
          [quoteTable(table)],
        );
        const keyColumns = keys.rows.map((r) => r.attname);
        const estimate = await client.query<{ n: string }>(`SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = $1::regclass`, [quoteTable(table)]);
        const estimated = Number(estimate.rows[0]?.n ?? 0);
        let read = 0;
        this.observer?.snapshotProgress?.(sourceId, table, 0, estimated);
        const cursor = `snapshot_${sourceId.replace(/[^A-Za-z0-9_]/g, "_")}`;
        await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT * FROM ${quoteTable(table)}`);
        for (;;) {
          await this.waitWhilePaused();
          if (this.stopped) throw new Error("stopped during the snapshot");
          const batch = await client.query<Row>(`FETCH ${SNAPSHOT_CHUNK} FROM ${cursor}`);
          read += batch.rows.length;
          this.observer?.snapshotProgress?.(sourceId, table, read, estimated);
          for (const row of batch.rows) {
            rows += 1;
            this.emit({
              sourceId,
              op: "snapshot",
              key: keyColumns.map((k) => String(row[k])).join(","),
              before: null,
              after: this.withoutExcluded(table, row),
              position: { stream: snapshotStream, position: `running:${consistentPoint}` },
              commitTime: started,
              snapshotId: consistentPoint,
            });
          }
          if (batch.rows.length < SNAPSHOT_CHUNK) break;
        }
        await client.query(`CLOSE ${cursor}`);
      }
      await client.query("COMMIT");
      this.emit({
        sourceId: this.tables[0]?.sourceId ?? "",
        op: "marker",
        key: "",
        before: null,
        after: null,
        position: { stream: snapshotStream, position: `complete:${consistentPoint}` },
        commitTime: Date.now(),
        snapshotComplete: { snapshotId: consistentPoint, sourceIds: this.tables.map((t) => t.sourceId) },
      });
      this.logger.info({ rows, tables: this.tables.length, consistentPoint }, "initial snapshot read");
    });
  }

  /** Every 5 s: server WAL position minus the slot's confirmed position (replication lag in bytes). */
  private startLagPoller(): NodeJS.Timeout {
    const poll = () => {
      if (this.stopped || !this.observer?.replicationLagBytes) return;
      void this.withClient((client) =>
        client.query<{ lag: string | null }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag FROM pg_replication_slots WHERE slot_name = $1`, [this.settings.slot]),
      )
        .then(({ rows }) => this.observer?.replicationLagBytes?.(this.appId, Math.max(0, Number(rows[0]?.lag ?? 0))))
        .catch(() => undefined);
    };
    poll();
    const timer = setInterval(poll, 5000);
    timer.unref();
    return timer;
  }

  private startHeartbeat(): NodeJS.Timeout | undefined {
    const interval = this.settings.heartbeatIntervalMs;
    if (interval <= 0) return undefined;
    let running = false;
    const timer = setInterval(() => {
      if (running || this.stopped) return;
      running = true;
      void this.withClient(async (client) => {
        for (const sql of heartbeatStatements(this.settings.heartbeatActionQuery)) await client.query(sql);
      })
        .catch((error: Error) => this.logger.warn({ err: error }, "heartbeat failed"))
        .finally(() => (running = false));
    }, interval);
    timer.unref();
    return timer;
  }

  private withoutExcluded(table: string, row: Row): Row {
    const patterns = this.settings.columnExcludeList;
    if (!patterns) return row;
    this.excluded ??= patterns.map((p) => new RegExp(`^${p}$`));
    const out: Record<string, unknown> = {};
    for (const [column, value] of Object.entries(row)) if (!this.excluded.some((p) => p.test(`${table}.${column}`))) out[column] = value;
    return out;
  }

  private deadLetter(lsn: string, reason: string, payload: unknown): void {
    this.logger.error({ lsn, reason }, "postgres-cdc message set aside as a dead letter");
    const sourceId = this.tables[0]?.sourceId ?? "";
    this.emit({ sourceId, op: "marker", key: "", before: null, after: null, position: { stream: this.stream, position: this.committedLsn }, commitTime: this.commitTime, deadLetter: { reason, payload } });
  }

  /** One decoded pgoutput message: row changes become Changes, commits move the position. */
  private handle(lsn: string, message: Pgoutput.Message, bySource: ReadonlyMap<string, string[]>): void {
    this.connected = true;
    switch (message.tag) {
      case "begin":
        this.commitTime = Number(BigInt(message.commitTime.toString()) / 1000n);
        return;
      case "commit": {
        // Every commit moves the stream to its end: once durable, everything committed up to there
        // is applied (transactions arrive in commit order), so that is what the slot may confirm.
        const end = message.commitEndLsn ?? lsn;
        if (compareLsn(end, this.committedLsn) > 0) this.committedLsn = end;
        this.emit({ sourceId: this.tables[0]?.sourceId ?? "", op: "marker", key: "", before: null, after: null, position: { stream: this.stream, position: this.committedLsn }, commitTime: this.commitTime });
        return;
      }
      case "message":
        return;
      case "insert":
      case "update":
      case "delete": {
        const table = `${message.relation.schema}.${message.relation.name}`;
        const after = message.tag === "delete" ? null : this.withoutExcluded(table, message.new);
        const before = message.tag === "insert" ? null : (message.old ?? message.key ?? null);
        const keyRow = after ?? before ?? {};
        const key = message.relation.keyColumns.map((k) => String(keyRow[k])).join(",");
        for (const sourceId of bySource.get(table) ?? []) {
          this.emit({ sourceId, op: message.tag, key, before, after, position: { stream: this.stream, position: this.committedLsn }, commitTime: this.commitTime });
        }
        break;
      }
      case "truncate":
        for (const relation of message.relations) {
          for (const sourceId of bySource.get(`${relation.schema}.${relation.name}`) ?? []) {
              this.emit({ sourceId, op: "truncate", key: "", before: null, after: null, position: { stream: this.stream, position: this.committedLsn }, commitTime: this.commitTime });
          }
        }
        break;
      default:
        return;
    }
  }

  private async stream_(): Promise<void> {
    if (this.settings.snapshot === "initial_only") {
      this.logger.info("snapshot.mode initial_only: not streaming");
      this.connected = true;
      while (!this.stopped) await new Promise((r) => setTimeout(r, 200));
      return;
    }
    const service = new LogicalReplicationService(this.settings.connection, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: false },
    });
    this.service = service;
    // messages: true delivers pg_logical_emit_message() heartbeats, which need no table.
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.settings.publication], messages: true });
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
    const bySource = new Map<string, string[]>();
    for (const t of this.tables) bySource.set(t.table, [...(bySource.get(t.table) ?? []), t.sourceId]);

    // Messages are handled synchronously as they are decoded, in stream order; pause() stops the socket.
    service.on("start", () => {
      if (this.gate.isPaused) this.pauseSocket(true);
    });
    service.on("data", (lsn: string, message: Pgoutput.Message | Undecodable) => {
      try {
        if (message.tag === UNDECODABLE) this.deadLetter(lsn, `pgoutput message at ${lsn} could not be decoded: ${message.reason}`, { lsn, bytes: message.bytes });
        else this.handle(lsn, message, bySource);
      } catch (error) {
        // Bad input never stops the stream nor vanishes: the message goes to the dead letters at the
        // position of the last whole transaction (which stays unconfirmed until that is durable).
        const reason = error instanceof Error ? error.message : String(error);
        this.deadLetter(lsn, `postgres-cdc could not handle the ${message.tag} message at ${lsn}: ${reason}`, { lsn, message: plain(message) });
      }
    });
    service.on("heartbeat", (lsn: string, _timestamp: number, shouldRespond: boolean) => {
      this.connected = true;
      // Answer with the last durable LSN, never the last received one, or wal_sender_timeout drops us.
      if (shouldRespond) void this.confirm(this.durableLsn).catch(() => undefined);
      // A keepalive carries the position the server has sent up to. When everything it sent before is
      // in the core and durable (messages are handled in stream order as they arrive, so none is still
      // queued), every transaction committed before
      // that position is durable too, as they are sent in commit order. That position then goes
      // through the core as a marker and is confirmed once durable, so the slot advances while the
      // captured tables are quiet, and a server shutting down (which waits until the confirmed position
      // equals what it sent) is not held up.
      const idle = compareLsn(this.lastEmittedLsn, this.durableLsn) <= 0;
      const sent = lsn;
      if (idle && compareLsn(sent, this.durableLsn) > 0 && compareLsn(sent, this.lastEmittedLsn) > 0) {
        this.committedLsn = sent;
        this.emit({ sourceId: this.tables[0]?.sourceId ?? "", op: "marker", key: "", before: null, after: null, position: { stream: this.stream, position: sent }, commitTime: Date.now() });
      }
    });
    const failed = new Promise<never>((_, reject) => service.on("error", reject));
    const heartbeat = this.startHeartbeat();
    const lagTimer = this.startLagPoller();
    this.logger.info({ slot: this.settings.slot, from: this.durableLsn }, "streaming from the replication slot");
    this.connected = true;
    try {
      await Promise.race([service.subscribe(plugin, this.settings.slot, this.durableLsn), failed]);
    } finally {
      if (heartbeat) clearInterval(heartbeat);
      clearInterval(lagTimer);
      this.connected = false;
      await service.stop().catch(() => undefined);
    }
    if (!this.stopped) throw new Error("the replication stream ended");
  }
}

/**
 * heartbeat.interval.ms: a transactional logical message (and heartbeat.action.query, if set) every
 * interval, so the slot advances through the core even while the captured tables are quiet and the
 * rest of the database is not (WAL is not retained for nothing).
 */
function heartbeatStatements(actionQuery: string | undefined): string[] {
  return [`SELECT pg_logical_emit_message(true, 'grouparoo_stream_heartbeat', '')`, ...(actionQuery ? [actionQuery] : [])];
}

export const postgresCdcPlugin: SourcePlugin = {
  appType: "postgres",
  sourceTypes: ["postgres-cdc"],
  create: (app, sources, context) => new PostgresCdcSource(app, sources, context),
};
