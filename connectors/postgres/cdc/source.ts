// postgres-cdc: one logical replication stream (one slot, pgoutput) per postgres app, covering all
// of its postgres-cdc sources. Prepares the publication and slot (slot.ts), reads an initial snapshot
// in the slot's exported snapshot (snapshot.ts), then streams from the slot's consistent point
// (stream.ts), with lag and heartbeat timers beside it (lag.ts). The slot's confirmed_flush_lsn only
// moves to LSNs the core reports durable: pg-logical-replication's own acknowledgement timer is off
// (timeoutSeconds: 0, its issue 174) and keepalives that ask for a reply are answered with the last
// durable LSN.
import type { LogicalReplicationService, Pgoutput } from "pg-logical-replication";
import type { Logger } from "pino";
import type { Change, Row } from "../../../core/change.js";
import type { AppConfig, SourceConfig } from "../../../core/config/schema.js";
import type { Located } from "../../../core/config/types.js";
import { configColumnsRead } from "../../../core/domain.js";
import { ProblemLog } from "../../problem-log.js";
import { ChangeReader } from "../../reader.js";
import type { RereadRequest, SourceContext, SourceObserver } from "../../types.js";
import { qualifyTable } from "../debezium.js";
import { classifyPostgresError, PermanentError, sqlState } from "../errors.js";
import { primaryKeyColumns, withClient } from "../introspect.js";
import { compareLsn, normalizeLsn, previousLsn, resolvePostgresApp, type PostgresAppSettings } from "../settings.js";
import { registerTypesOf, TYPE_CONFLICT } from "../types.js";
import { startHeartbeat, startLagPoller } from "./lag.js";
import { addToPublication, columnKey, currentTables, partitionsOf, readColumns, tablesStream, type TableNow } from "./tables.js";
import { createSlot, planSlot, SlotLostError, type CapturedTable } from "./slot.js";
import { rereadTables } from "./reread.js";
import { readSnapshot } from "./snapshot.js";
import { openReplication, PgoutputChanges, type Undecodable } from "./stream.js";

export class PostgresCdcSource extends ChangeReader {
  readonly stream: string;
  private readonly settings: PostgresAppSettings;
  private readonly tables: CapturedTable[];
  private readonly logger: Logger;
  private readonly positions: ReadonlyMap<string, string>;
  private readonly observer: SourceObserver | undefined;
  private service: LogicalReplicationService | undefined;
  /** Whether the service's replication started (its "start" event): before that it is still opening. */
  private streaming = false;
  private connected = false;
  private pausedKeepalive: NodeJS.Timeout | undefined;
  private warnedNoSocket = false;
  /** column.exclude.list, compiled once. */
  private excluded: RegExp[] | undefined;
  /** The highest LSN whose changes are durable in the state; the only LSN ever acknowledged. */
  private durableLsn = "0/0";
  /** The LSN of the last change handed to the core (durable once durableLsn reaches it). */
  private lastEmittedLsn = "0/0";
  private readonly decoder: PgoutputChanges;
  /** Set once publication and slot were prepared in this process (reconnects do not snapshot again). */
  private prepared = false;
  /** A permanent problem (errors.ts) stopping the stream until fixed, for /readyz; null when none. */
  private permanentProblem: string | null = null;
  /** Reconnects after transient failures: warn, the stack only the first time. */
  private readonly reconnects: ProblemLog;
  /** Permanent problems: error, once, then at most once a minute while they last. */
  private readonly permanents: ProblemLog;
  /** How long to wait before checking a permanent problem again. */
  static permanentRetryMs = 60_000;
  /** How often the captured tables' OIDs are read (tables.ts). */
  static tableCheckMs = 30_000;
  /** A captured table made again that could not be handled (the relay, a refused ALTER), for /readyz. */
  private tableProblem: string | null = null;
  private readonly tableLog: ProblemLog;
  /** The OID of each captured table when last seen (durable as the position of its own stream). */
  private tableOids: Record<string, string> = {};
  private checkingTables = false;
  /** The truncated partitions' records whose re-read is being asked for now (the table check leaves them). */
  private readonly askingTruncated = new Set<string>();
  /** The columns the sources read, by table: a change of one (ALTER TABLE) reads its sources again. */
  private readonly reads: readonly { table: string; column: string }[];
  private readonly requestReread: SourceContext["requestReread"];

  constructor(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext) {
    super(app.id);
    this.stream = `postgres:${app.id}`;
    this.settings = resolvePostgresApp(app);
    this.tables = sources.flatMap((s) => (s.type === "postgres-cdc" ? [{ sourceId: s.id, table: qualifyTable(String(s.options.table)) }] : []));
    // The columns each captured table's sources read (mapping, properties' columns, sort columns, filter keys).
    const reads = new Map<string, { table: string; column: string }>();
    for (const { sourceId, table } of this.tables) {
      const source = sources.find((x) => x.id === sourceId);
      const properties = (context.properties ?? []).filter((p) => p.sourceId === sourceId);
      const columns = [...Object.keys(source?.mapping ?? {}), ...properties.flatMap(configColumnsRead)];
      for (const column of columns) reads.set(columnKey(table, column), { table, column });
    }
    this.reads = [...reads.values()];
    this.logger = context.logger;
    this.positions = context.positions;
    this.observer = context.observer;
    this.reconnects = new ProblemLog(this.logger, "warn", 0);
    this.permanents = new ProblemLog(this.logger, "error", PostgresCdcSource.permanentRetryMs);
    this.tableLog = new ProblemLog(this.logger, "error", PostgresCdcSource.permanentRetryMs);
    const stored = context.positions.get(this.stream);
    // One position format everywhere: Postgres's X/Y (an older state may hold the library's padded form).
    const resumed = stored === undefined ? undefined : normalizeLsn(stored);
    if (resumed) this.durableLsn = resumed;
    this.decoder = new PgoutputChanges(this.stream, this.tables, resumed ?? "0/0", (table, row) => this.withoutExcluded(table, row), (change) => this.emit(change), this.logger);
    const oids = context.positions.get(tablesStream(this.stream));
    if (oids !== undefined) this.tableOids = JSON.parse(oids) as Record<string, string>;
    this.requestReread = context.requestReread;
    this.decoder.partitionsTruncated = (table, partitions) => this.partitionsTruncated(table, partitions);
    // A re-read under way when the daemon stopped: its rows are marked from the first change streamed.
    for (const underWay of context.rereading ?? []) {
      for (const id of underWay.sourceIds) if (this.tables.some((t) => t.sourceId === id)) this.decoder.rereading.set(id, rereadMark(underWay.runId));
    }
  }

  ready(): boolean {
    return this.connected && !this.stopped;
  }

  problem(): string | null {
    return this.stopped ? null : (this.permanentProblem ?? this.tableProblem);
  }

  /**
   * Confirms exactly `lsn` to the server: every position here is an LSN that may be confirmed as is
   * (a change's own start, a commit's end, a keepalive's sent position). pg-logical-replication sends
   * the LSN it is given plus one, which past a commit's end would skip a transaction that starts there.
   */
  private confirm(lsn: string): Promise<boolean> {
    return this.service?.acknowledge(previousLsn(lsn)) ?? Promise.resolve(false);
  }

  /**
   * Flow control of the stream: its socket stops being read (what was already received is still
   * emitted, a bounded overshoot). Unread keepalive requests go unanswered meanwhile, so a status
   * update with the durable LSN every 10 s keeps wal_sender_timeout from dropping us.
   * pg-logical-replication's own flow control (its `flowControl` option) pauses the same socket, but
   * queues every message behind two awaits, which costs more than decoding it.
   */
  protected override paused(paused: boolean): void {
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
    this.logger.debug({ lsn }, "acknowledging the slot up to the durable position");
    await this.confirm(lsn).catch((error: Error) => this.logger.warn({ err: error }, "acknowledging the slot failed; it is retried with the next batch"));
  }

  /** Re-reads tables while streaming goes on (reread.ts); the Run's end is a marker in the stream. */
  async reread(request: RereadRequest): Promise<void> {
    const runStream = `run:${request.runId}`;
    const marker = (position: string): Change => ({ sourceId: request.sourceIds[0] ?? "", op: "marker", key: "", before: null, after: null, position: { stream: runStream, position }, commitTime: Date.now() });
    // Every row it reads, and every row that streams in meanwhile, carries its mark; when it completes,
    // the rows of its sources without the mark are gone from the table (deleted while nothing saw it,
    // or before the table was made again) and are removed, as a fresh daemon's snapshot leaves them out.
    const mark = rereadMark(request.runId);
    for (const id of request.sourceIds) this.decoder.rereading.set(id, mark);
    const unmark = () => {
      for (const id of request.sourceIds) if (this.decoder.rereading.get(id) === mark) this.decoder.rereading.delete(id);
    };
    void rereadTables(request, {
      settings: this.settings,
      tables: this.tables,
      decoder: this.decoder,
      ready: async () => {
        while (!this.stopped && (!this.ready() || this.gate.isPaused)) await Promise.race([new Promise((r) => setTimeout(r, 100)), this.stopRequested]);
      },
      stopped: () => this.stopped,
      stopRequested: this.stopRequested,
    }).then(
      (result) => {
        // The Run's end carries its row count: the last chunk may commit in the batch that ends it.
        if (result === "stopped") return;
        this.emit({ ...marker(JSON.stringify({ ...result, complete: true })), snapshotComplete: { snapshotId: mark, sourceIds: request.sourceIds } });
        unmark();
      },
      (error: unknown) => {
        unmark();
        const reason = error instanceof Error ? error.message : String(error);
        this.logger.error({ run: request.runId, err: error }, "re-reading failed");
        this.emit(marker(`failed:${reason}`));
      },
    );
  }

  /**
   * Reads the captured tables' OIDs (tables.ts): a table made again under its name is added to a
   * filtered publication and its sources read again, and the OIDs seen are stored as a position.
   * Where nothing runs Runs (the relay), or when adding or asking fails, the table is this app's
   * problem (on /readyz, logged at error) and its new OID is not stored, so it is found again.
   */
  private async checkTables(): Promise<void> {
    if (this.checkingTables || this.stopped) return;
    this.checkingTables = true;
    let now: Map<string, TableNow>;
    let columns: Map<string, string>;
    try {
      now = await currentTables(this.settings, this.tables);
      columns = await readColumns(this.settings, this.reads);
    } catch (error) {
      this.checkingTables = false;
      this.logger.debug({ err: error }, "reading the captured tables' OIDs failed; tried again at the next check");
      return;
    }
    try {
      const next = { ...this.tableOids };
      await this.checkPartitions(next);
      // Partitions truncated whose re-read was not asked for yet (it failed, or the daemon stopped first).
      const handled = new Map<string, string>();
      for (const [key, value] of Object.entries(this.tableOids)) {
        if (!key.endsWith(TRUNCATED) || this.askingTruncated.has(key)) continue;
        const table = key.slice(0, -TRUNCATED.length);
        await this.rereadPartitioned(table, truncatedReason(table, JSON.parse(value) as string[]));
        handled.set(key, value);
        delete next[key];
      }
      const missed: { table: string; why: string; oid: string }[] = [];
      const gone: string[] = [];
      for (const [table, { oid, published }] of now) {
        if (oid === null) {
          gone.push(table);
          continue;
        }
        const known = this.tableOids[table];
        if (known !== undefined && known !== oid) missed.push({ table, oid, why: `was made again (another table under the name: OID ${known} to ${oid})` });
        else if (!published) missed.push({ table, oid, why: `is not in publication ${this.settings.publication} (its changes since it left were not sent)` });
        else next[table] = oid;
      }
      if (missed.length > 0) {
        const tables = missed.map((m) => m.table);
        const sourceIds = this.tables.filter((t) => tables.includes(t.table)).map((t) => t.sourceId);
        const reason = missed.map((m) => `table ${m.table} ${m.why}`).join("; ");
        // A new table's primary key may be another: its relations are found again with it.
        const { order, added } = await withClient(this.settings.connection, async (client) => {
          const found = new Map<string, readonly string[]>();
          for (const table of tables) found.set(table, await primaryKeyColumns(client, table));
          return { order: found, added: await addToPublication(client, this.settings, tables) };
        });
        this.decoder.keyOrder = new Map([...this.decoder.keyOrder, ...order]);
        this.decoder.keyOrders += 1;
        const unpublished = missed.filter((m) => !now.get(m.table)?.published && !added.includes(m.table)).map((m) => m.table);
        if (unpublished.length > 0) throw new Error(`${reason}: add ${unpublished.join(", ")} to publication ${this.settings.publication} (publication.autocreate.mode is ${this.settings.publicationAutocreateMode}, so the daemon does not)`);
        if (!this.requestReread) throw new Error(`${reason}: the relay cannot read a table again, so the workers keep what they had of it and lack the rest; deploy anew (a new slot, model topic and consumer group) to read it whole`);
        // Durable before the OIDs are: a crash between the two asks again.
        await this.requestReread(sourceIds, reason);
        this.logger.warn({ tables, sources: sourceIds, addedToPublication: added }, `${reason}: its sources are read again, and the rows the table no longer has are removed`);
        for (const m of missed) next[m.table] = m.oid;
      }
      // A column the sources read dropped, renamed, made again or given another type: the rows the DDL
      // changed sent no change, so the state holds them as they were; a re-read brings them as they are.
      const altered = new Map<string, string[]>();
      for (const { table, column } of this.reads) {
        const key = columnKey(table, column);
        const sig = columns.get(key);
        if (sig === undefined || gone.includes(table)) continue;
        const known = this.tableOids[key];
        if (known !== undefined && known !== sig && !missed.some((m) => m.table === table)) altered.set(table, [...(altered.get(table) ?? []), `${column}: ${describeColumn(known)} to ${describeColumn(sig)}`]);
        else next[key] = sig;
      }
      if (altered.size > 0) {
        const tables = [...altered.keys()];
        const sourceIds = this.tables.filter((t) => tables.includes(t.table)).map((t) => t.sourceId);
        const reason = [...altered].map(([table, what]) => `table ${table} changed columns its sources read (${what.join("; ")})`).join("; ");
        // The relay cannot read a table again: it says so once, and streams on (rows written since are right).
        if (!this.requestReread) this.logger.error({ tables, sources: sourceIds }, `${reason}: the relay cannot read a table again, so the workers keep the values its rows had until they are written; deploy anew (a new slot, model topic and consumer group) to read it whole`);
        else {
          await this.requestReread(sourceIds, reason);
          this.logger.warn({ tables, sources: sourceIds }, `${reason}: its sources are read again`);
        }
        for (const { table, column } of this.reads) if (altered.has(table)) next[columnKey(table, column)] = columns.get(columnKey(table, column)) ?? "-";
      }
      if (gone.length > 0) {
        const sourceIds = this.tables.filter((t) => gone.includes(t.table)).map((t) => t.sourceId);
        throw new Error(`table ${gone.join(", ")} does not exist any more: the records and rows read from it (sources ${sourceIds.join(", ")}) stay as they were, and a fresh start refuses this config (exit 78); take its sources out of the config, or make the table again`);
      }
      this.tableProblem = null;
      this.tableLog.clear();
      // Truncations recorded or asked for while this check ran are as they are now.
      for (const key of Object.keys(next)) if (key.endsWith(TRUNCATED) && !(key in this.tableOids)) delete next[key];
      for (const [key, value] of Object.entries(this.tableOids)) if (key.endsWith(TRUNCATED) && handled.get(key) !== value) next[key] = value;
      if (JSON.stringify(next) !== JSON.stringify(this.tableOids)) this.storeTables(next);
    } catch (error) {
      this.tableProblem = (error as Error).message;
      this.tableLog.report(this.tableProblem, {}, `${this.tableProblem} (checked again every ${Math.round(PostgresCdcSource.tableCheckMs / 1000)} s)`);
    } finally {
      this.checkingTables = false;
    }
  }

  /**
   * Partitions made or gone since the last check (a new month's partition, an old one dropped or
   * detached): a publication that does not publish via the root sent a new partition's changes under
   * its own name, which nothing read until the map held it, and a partition dropped or detached took
   * its rows out of the table without any change; so the partitioned table's sources are read again.
   * The partitions seen are stored with the tables' OIDs (only once the re-read is asked for): a
   * restart or reload between a partition's making and this check, whose new map holds it already,
   * still finds it new (its changes streamed meanwhile were dropped, and their positions acknowledged).
   */
  private async checkPartitions(next: Record<string, string>): Promise<void> {
    const { found, viaRoot } = await withClient(this.settings.connection, async (client) => ({
      found: await partitionsOf(client, this.tables.map((t) => t.table)),
      viaRoot: (await client.query<{ v: boolean }>(`SELECT pubviaroot AS v FROM pg_publication WHERE pubname = $1`, [this.settings.publication])).rows[0]?.v === true,
    }));
    if (JSON.stringify([...found]) !== JSON.stringify([...this.decoder.partitionOf])) {
      this.decoder.partitionOf = found;
      this.decoder.keyOrders += 1;
    }
    for (const table of new Set(this.tables.map((t) => t.table))) {
      const key = partitionsKey(table);
      const leaves = [...found].filter(([, root]) => root === table).map(([leaf]) => leaf).sort();
      const known = this.tableOids[key] === undefined ? undefined : (JSON.parse(this.tableOids[key]) as string[]);
      if (known === undefined && leaves.length === 0) continue;
      const added = known === undefined || viaRoot ? [] : leaves.filter((leaf) => !known.includes(leaf));
      const gone = known === undefined ? [] : known.filter((leaf) => !leaves.includes(leaf));
      const why = [
        ...(added.length > 0 ? [`has new partitions (${added.join(", ")}) whose changes were not read until now`] : []),
        ...(gone.length > 0 ? [`lost partitions (${gone.join(", ")}: dropped or detached) whose rows left it without a change`] : []),
      ];
      if (why.length > 0) await this.rereadPartitioned(table, `table ${table} ${why.join(", and ")}`);
      next[key] = JSON.stringify(leaves);
    }
  }

  /**
   * Some partitions of a captured partitioned table truncated (not all): its sources are read again.
   * The truncation is recorded first, as a position of the tables' stream emitted before the
   * truncate's own position (so durable no later than it, which may be acknowledged then), and
   * forgotten once the re-read is asked for: a request that fails, or a stop before it, is asked again
   * by the next check (after a restart, the first). The relay cannot read again: it says so.
   */
  private partitionsTruncated(table: string, partitions: readonly string[]): void {
    if (!this.requestReread) {
      void this.rereadPartitioned(table, truncatedReason(table, partitions));
      return;
    }
    const key = table + TRUNCATED;
    const known = this.tableOids[key] === undefined ? [] : (JSON.parse(this.tableOids[key]) as string[]);
    const value = JSON.stringify([...new Set([...known, ...partitions])].sort());
    this.storeTables({ ...this.tableOids, [key]: value });
    this.askingTruncated.add(key);
    void this.rereadPartitioned(table, truncatedReason(table, partitions)).finally(() => this.askingTruncated.delete(key)).then(
      () => {
        if (this.tableOids[key] !== value) return;
        const next = { ...this.tableOids };
        delete next[key];
        this.storeTables(next);
      },
      (error: unknown) => this.logger.error({ table, err: error }, "asking for a re-read failed; asked again at the next check of the tables"),
    );
  }

  /** The captured tables' record (OIDs, read columns, partitions), as a position of their stream. */
  private storeTables(next: Record<string, string>): void {
    this.tableOids = next;
    this.emit({ sourceId: this.tables[0]?.sourceId ?? "", op: "marker", key: "", before: null, after: null, position: { stream: tablesStream(this.stream), position: JSON.stringify(next) }, commitTime: Date.now() });
  }

  /** Reads a partitioned table's sources again (its sweep removes what its partitions no longer hold). */
  private async rereadPartitioned(table: string, reason: string): Promise<void> {
    const sourceIds = this.tables.filter((t) => t.table === table).map((t) => t.sourceId);
    if (sourceIds.length === 0) return;
    if (!this.requestReread) {
      this.logger.error({ table, sources: sourceIds }, `${reason}: the relay cannot read a table again; deploy anew (a new slot, model topic and consumer group) to read it whole`);
      return;
    }
    await this.requestReread(sourceIds, reason);
    this.logger.warn({ table, sources: sourceIds }, `${reason}: its sources are read again`);
  }

  protected async interrupt(): Promise<void> {
    if (this.pausedKeepalive) clearInterval(this.pausedKeepalive);
    this.pausedKeepalive = undefined;
    // A service still opening its connection is not stopped through the library: pg-logical-
    // replication's stop() racing its own start can strip the new connection's listeners and leave
    // subscribe() pending for ever (a stop during a reload then never finished). Its socket, once it
    // has one, is closed instead: the opening fails and the library's own error path cleans up (a
    // START_REPLICATION then unanswered fails too). Before its client exists, the service opens and
    // the "start" handler below ends it, or it fails to open (bounded by the connect timeout).
    if (this.streaming) await this.service?.stop().catch(() => undefined);
    else openingSocket(this.service)?.destroy();
  }

  protected override emit(change: Change): void {
    if (change.position.stream === this.stream) this.lastEmittedLsn = change.position.position;
    super.emit(change);
  }

  /**
   * Prepares and streams until stopped. Transient failures (errors.ts: the connection refused, reset
   * or timed out, the server shutting down, the slot still held by a dying backend) reconnect with
   * exponential backoff from 0.5 s to 30 s, logged at warn (the stack only the first time). Permanent
   * ones (a missing table, permission denied, bad credentials, an invalid connection string) make
   * this app not ready with the reason (problem(), on /readyz), are logged at error once (then at most
   * once a minute) and checked again once a minute; other apps keep running. A lost slot stops it.
   */
  protected async read(): Promise<void> {
    let delay = 500;
    while (!this.stopped) {
      try {
        await this.prepare();
        if (this.stopped) break;
        await this.streamChanges();
        delay = 500;
      } catch (error) {
        this.connected = false;
        if (this.stopped) break;
        if (error instanceof SlotLostError) throw error;
        // The slot holds changes committed before the publication existed (renamed in the config, or
        // dropped and made again): skipped past, with every source read again.
        // Handling it may fail in turn (the daemon not yet running its Runs, the slot still held): that
        // failure is what is reported and retried, not the 42704 behind it.
        const handled = await this.publicationMadeLater(error).catch((failure: unknown) => failure);
        if (handled === true) {
          delay = 500;
          continue;
        }
        const failure = handled === false ? error : handled;
        const { permanent, reason } = classifyPostgresError(failure);
        let wait = delay;
        if (permanent) {
          this.permanentProblem = reason;
          wait = PostgresCdcSource.permanentRetryMs;
          this.permanents.report(reason, { slot: this.settings.slot, retryInMs: wait }, "postgres replication cannot run until this is fixed; other apps go on", failure);
        } else {
          this.permanentProblem = null;
          this.permanents.clear();
          this.reconnects.report(reason, { retryInMs: delay }, "postgres replication failed; reconnecting", failure);
          delay = Math.min(delay * 2, 30_000);
        }
        await Promise.race([new Promise((r) => setTimeout(r, wait)), this.stopRequested]);
      }
    }
    this.connected = false;
  }

  /**
   * pgoutput reads the publication with the catalog as of each change it decodes: a change committed
   * before the publication was created (its name changed in the config, the slot kept; or it was
   * dropped and made again) fails with `publication "P" does not exist` (42704) at every attempt, and
   * the stream could never go past it. When that is the error and the publication exists now, the
   * sources are read again (a Run, durable first: its sweep also removes the rows deleted meanwhile),
   * then the slot is moved past the publication's creation and the stream resumes there, so the state
   * ends as a fresh daemon's. Where nothing can read a table again (the relay), it stays a permanent
   * problem, saying so. True when handled.
   */
  private async publicationMadeLater(error: unknown): Promise<boolean> {
    const { publication, slot } = this.settings;
    if (sqlState(error) !== "42704" || !(error instanceof Error) || !error.message.includes(`publication "${publication}" does not exist`)) return false;
    const exists = await withClient(this.settings.connection, async (client) => (await client.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication])).rowCount === 1);
    if (!exists) return false;
    const sourceIds = this.tables.map((t) => t.sourceId);
    const reason = `replication slot ${slot} holds changes committed before publication ${publication} was created (the config names another publication, or it was made again), which pgoutput cannot decode`;
    if (!this.requestReread) throw new PermanentError(`${reason}: the relay cannot read a table again; deploy anew (a new slot, model topic and consumer group)`);
    // Durable before the slot moves: a crash between the two finds the same error and asks again.
    await this.requestReread(sourceIds, reason);
    const lsn = await withClient(this.settings.connection, async (client) => {
      // pg_current_wal_lsn() is where the WAL is written up to, not where it ends: with asynchronous
      // commits (synchronous_commit off) the publication's own commit record may still wait in the WAL
      // buffers, and a slot moved there stayed before the publication's creation: a change committed
      // in between failed with 42704 once more, and every source was read again a second time. A
      // transaction that writes (a logical message, which the stream ignores) and commits synchronously
      // here flushes the WAL up to its own commit, after the publication's (already visible, so in it).
      await client.query(`BEGIN; SET LOCAL synchronous_commit = local; SELECT pg_logical_emit_message(true, 'grouparoo_stream_flush', ''); COMMIT`);
      const now = (await client.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`)).rows[0]?.lsn ?? "0/0";
      // The walsender that failed may hold the slot a moment longer (55006): asked again until released,
      // for up to 30 s (a loaded server can take seconds to end it). Given up sooner, the next attempt
      // would find the same error and read every source once more.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await client.query(`SELECT pg_replication_slot_advance($1, $2::pg_lsn)`, [slot, now]);
          return normalizeLsn(now);
        } catch (advanceError) {
          if (sqlState(advanceError) !== "55006" || attempt >= 300 || this.stopped) throw advanceError;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });
    this.logger.warn({ slot, publication, sources: sourceIds, skippedTo: lsn }, `${reason}: its sources are read again, and the slot moved past the publication's creation`);
    // A re-read's chunk under way may have written its watermarks before that point (a Run started
    // by an earlier request, the publication dropped and made again meanwhile): they never stream, and
    // the Run waited on them for ever. It reads the chunk again.
    const waiting = this.decoder.window;
    if (waiting) {
      this.decoder.window = undefined;
      waiting.skipped();
    }
    // Everything before it is now the re-read's to bring: the position moves there once durable.
    if (compareLsn(lsn, this.durableLsn) > 0) {
      this.durableLsn = lsn;
      this.decoder.idleAt(lsn);
    }
    return true;
  }

  /** Publication and slot: created when missing; the initial snapshot when the mode asks for one. */
  private async prepare(): Promise<void> {
    const snapshotStream = `${this.stream}:snapshot`;
    // After the first successful preparation (a reconnect), the snapshot this process took counts as done.
    const snapshotDone = this.prepared || this.positions.get(snapshotStream)?.startsWith("complete:") === true;
    // The tables' own types are read as their elements and base types (types.ts).
    this.decoder.keyOrder = await withClient(this.settings.connection, async (client) => {
      await registerTypesOf(client, (oid) => this.logger.warn({ oid }, TYPE_CONFLICT));
      const order = new Map<string, readonly string[]>();
      for (const { table } of this.tables) order.set(table, await primaryKeyColumns(client, table));
      this.decoder.partitionOf = await partitionsOf(client, this.tables.map((t) => t.table));
      return order;
    });
    this.decoder.keyOrders += 1;
    const plan = await planSlot(this.settings, this.tables, { prepared: this.prepared, snapshotDone, streamed: this.positions.has(this.stream) }, this.logger);
    if (plan.kind === "create") {
      await createSlot(this.settings, plan.snapshot, this.logger, async (snapshotName, consistentPoint) => {
        const rows = await readSnapshot(this.settings, this.tables, snapshotName, consistentPoint, {
          stream: snapshotStream,
          emit: (change) => this.emit(change),
          waitWhilePaused: () => this.waitWhilePaused(),
          stopped: () => this.stopped,
          withoutExcluded: (table, row) => this.withoutExcluded(table, row),
          observer: this.observer,
        });
        this.logger.info({ rows, tables: this.tables.length, consistentPoint }, "initial snapshot read");
      }, this.stopRequested);
    }
    this.prepared = true;
  }

  private withoutExcluded(table: string, row: Row): Row {
    const patterns = this.settings.columnExcludeList;
    if (!patterns) return row;
    this.excluded ??= patterns.map((p) => new RegExp(`^${p}$`));
    const out: Record<string, unknown> = {};
    for (const [column, value] of Object.entries(row)) if (!this.excluded.some((p) => p.test(`${table}.${column}`))) out[column] = value;
    return out;
  }

  private async streamChanges(): Promise<void> {
    if (this.settings.snapshot === "initial_only") {
      this.logger.info("snapshot.mode initial_only: not streaming");
      this.connected = true;
      await this.stopRequested;
      return;
    }
    const { service, plugin } = openReplication(this.settings);
    this.service = service;
    this.streaming = false;
    // Messages are handled synchronously as they are decoded, in stream order; pause() stops the socket.
    service.on("start", () => {
      // A stop that came while the service was opening its connection left it alone (see interrupt):
      // the stream that started now is ended here, or it would stream on unread, holding the slot.
      if (this.stopped) {
        void service.stop().catch(() => undefined);
        return;
      }
      this.streaming = true;
      if (this.gate.isPaused) this.paused(true);
      // The server accepted START_REPLICATION: now, not before, the app is streaming.
      this.logger.info({ slot: this.settings.slot, from: this.durableLsn, ...(this.reconnects.count > 0 ? { afterFailures: this.reconnects.count } : {}) }, "streaming from the replication slot");
      this.permanentProblem = null;
      this.permanents.clear();
      this.reconnects.clear();
    });
    service.on("data", (lsn: string, message: Pgoutput.Message | Undecodable) => {
      this.connected = true;
      // The decoder puts the LSN in Postgres's format where it keeps one (commits, dead letters), not per message.
      this.decoder.receive(lsn, message);
    });
    service.on("heartbeat", (rawLsn: string, _timestamp: number, shouldRespond: boolean) => {
      const lsn = normalizeLsn(rawLsn);
      this.connected = true;
      // Answer with the last durable LSN, never the last received one, or wal_sender_timeout drops us.
      if (shouldRespond) void this.confirm(this.durableLsn).catch(() => undefined);
      // A keepalive carries the position the server has sent up to. When everything it sent before is
      // in the core and durable (messages are handled in stream order as they arrive, so none is still
      // queued), every transaction committed before that position is durable too, as they are sent in
      // commit order. That position then goes through the core as a marker and is confirmed once
      // durable, so the slot advances while the captured tables are quiet, and a server shutting down
      // (which waits until the confirmed position equals what it sent) is not held up.
      const idle = compareLsn(this.lastEmittedLsn, this.durableLsn) <= 0;
      if (idle && compareLsn(lsn, this.durableLsn) > 0 && compareLsn(lsn, this.lastEmittedLsn) > 0) this.decoder.idleAt(lsn);
    });
    const failed = new Promise<never>((_, reject) => service.on("error", reject));
    const heartbeat = startHeartbeat(this.settings, this.logger, () => this.stopped);
    const lagTimer = startLagPoller(this.settings, this.observer?.replicationLagBytes ? (bytes) => this.observer?.replicationLagBytes?.(this.appId, bytes) : undefined, () => this.stopped);
    const tableTimer = setInterval(() => void this.checkTables(), PostgresCdcSource.tableCheckMs).unref();
    void this.checkTables();
    this.connected = true;
    try {
      await Promise.race([service.subscribe(plugin, this.settings.slot, this.durableLsn), failed]);
    } finally {
      if (heartbeat) clearInterval(heartbeat);
      clearInterval(lagTimer);
      clearInterval(tableTimer);
      this.connected = false;
      this.streaming = false;
      await service.stop().catch(() => undefined);
    }
    if (!this.stopped) throw new Error("the replication stream ended");
  }
}

/** The socket of the client a replication service is opening, once it has created one (library internals). */
function openingSocket(service: LogicalReplicationService | undefined): { destroy(): void } | undefined {
  return (service as unknown as { _client?: { connection?: { stream?: { destroy(): void } } } | null } | undefined)?._client?.connection?.stream;
}

/** The mark a re-read puts on the rows it reads and streams (a snapshot id of its own). */
function rereadMark(runId: string): string {
  return `reread:${runId}`;
}

/** The suffix of the key of a partitioned table's truncated partitions whose re-read is still to be asked for. */
const TRUNCATED = "\u0000truncated";
const truncatedReason = (table: string, partitions: readonly string[]) => `partitions ${partitions.join(", ")} of table ${table} were truncated (not all of its partitions)`;

/** The key of a partitioned table's partitions in the stored record of the captured tables. */
const partitionsKey = (table: string): string => `${table}\u0000partitions`;

/** A read column as stored (`3:text`, `-`), for a message: `text (column 3)`, `absent`. */
function describeColumn(sig: string): string {
  if (sig === "-") return "absent";
  const at = sig.indexOf(":");
  return `${sig.slice(at + 1)} (column ${sig.slice(0, at)})`;
}
