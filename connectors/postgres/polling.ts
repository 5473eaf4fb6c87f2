// Polling sources for tables without replication, run by schedules: postgres-table-import reads rows
// whose high-watermark column is >= the last one seen (ordered by it and the primary key, with an
// offset for the rows sharing the last value, so ties across pages are neither skipped nor read
// twice); postgres-query-import runs its query and upserts every row. Each row's position (the high
// watermark and offset after it) goes through the core, so a restart resumes from durable state. An
// app `refresh` query that returns something new triggers the app's schedules at once.
import { Type, type Static } from "@sinclair/typebox";
import pg from "pg";
import Cursor from "pg-cursor";
import type { Logger } from "pino";
import { rowKey, type Change, type Row } from "../../core/change.js";
import type { AppConfig, ScheduleConfig, SourceConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import { ProblemLog } from "../problem-log.js";
import { ChangeReader } from "../reader.js";
import type { RereadRequest, SourceComponent, SourceContext } from "../types.js";
import type { PostgresAppOptions } from "./app.js";
import { qualifyTable } from "./debezium.js";
import { primaryKeyColumns, quoteIdent, quoteTable, withClient } from "./introspect.js";
import { registerTypesOf, TYPE_CONFLICT } from "./types.js";
import { classifyPostgresError, PermanentError } from "./errors.js";
import { checkPostgresSources } from "./live.js";
import { resolvePostgresApp } from "./settings.js";

export const PostgresTableImportOptions = Type.Object(
  {
    table: Type.String({ minLength: 1, description: "Table as schema.table, or table in public." }),
    highWatermarkColumn: Type.String({ minLength: 1, description: "Column read in order, from the last value read (ties ordered and resumed by the primary key)." }),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, default: 1000, description: "Rows per query." })),
  },
  { additionalProperties: false },
);
export const PostgresQueryImportOptions = Type.Object(
  { query: Type.String({ minLength: 1, description: "SELECT whose rows are imported on each scheduled run." }) },
  { additionalProperties: false },
);

type TableImport = Located<SourceConfig> & { type: "postgres-table-import"; options: Static<typeof PostgresTableImportOptions> };
type QueryImport = Located<SourceConfig> & { type: "postgres-query-import"; options: Static<typeof PostgresQueryImportOptions> };
type PollingSource = TableImport | QueryImport;

/**
 * Where a table import stands: the last high watermark (as text), how many rows with it were read, and
 * the primary key (each column as text) of the last of them. The next page reads the rows past that
 * row in (watermark, primary key) order: the ties after it, then every row with a greater watermark.
 * A position written before `key` existed resumes its ties by `offset` (only among rows that share
 * the watermark).
 */
export interface Watermark {
  hw: string | null;
  offset: number;
  key?: string[];
}

const HW = "__grouparoo_hw";
const KEY = "__grouparoo_k";

/**
 * How often the database of polling sources is asked whether it answers while no run is under way:
 * between two runs of a long schedule, /readyz would otherwise say ready for a database that is down.
 * The probe keeps one connection open (a new one every 5 s would fill a connection log), and opens it
 * again after a failure.
 */
export const POLLING_PROBE_MS = 5_000;

/** The first wait before a re-read that failed on a transient error (the database down) is tried again; it doubles, up to 30 s. */
export const REREAD_RETRY_MS = 1_000;

/** The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days): a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;
/** Rows a query import reads from its cursor at a time. */
const QUERY_ROWS_PER_READ = 1_000;

interface Repeating {
  clear(): void;
}

/**
 * Calls `run` every `ms` milliseconds, a period longer than a Node timer takes (a monthly schedule)
 * included: such a period is waited out in steps of at most MAX_TIMER_MS.
 */
export function repeat(ms: number, run: () => void): Repeating {
  if (ms <= MAX_TIMER_MS) {
    const timer = setInterval(run, ms);
    return { clear: () => clearInterval(timer) };
  }
  let timer: NodeJS.Timeout | undefined;
  let cleared = false;
  const wait = (left: number): void => {
    if (cleared) return;
    const step = Math.min(left, MAX_TIMER_MS);
    timer = setTimeout(() => {
      if (left > step) return wait(left - step);
      run();
      wait(ms);
    }, step);
  };
  wait(ms);
  return {
    clear: () => {
      cleared = true;
      clearTimeout(timer);
    },
  };
}

export class PostgresPollingSource extends ChangeReader {
  private readonly connection: pg.ClientConfig;
  private readonly sources: PollingSource[];
  private readonly schedules: readonly Located<ScheduleConfig>[];
  private readonly refresh: { query: string; recurringFrequency: number } | undefined;
  private readonly logger: Logger;
  private readonly watermarks = new Map<string, Watermark>();
  /** Sources to run once more when their run under way ends (the refresh query changed meanwhile). */
  private readonly again = new Set<string>();
  /** The run under way of each source. */
  private readonly running = new Map<string, Promise<boolean>>();
  private readonly timers: Repeating[] = [];
  private connected = false;
  private lastRefresh: string | undefined;
  /** Query rows without a key already set aside, by source (each once while the daemon runs). */
  private readonly unkeyed = new Map<string, Set<string>>();
  /** The runs under way (each removes itself when it settles). */
  private readonly runs = new Set<Promise<boolean>>();
  /** The last failed run's error by source: whether it was permanent, and why. */
  private readonly lastFailure = new Map<string, { permanent: boolean; reason: string }>();
  /** Permanent problems by source (a missing table, permission denied): for /readyz. */
  private readonly problems = new Map<string, string>();
  /** Failed runs by source: permanent ones at error, transient at warn; the same reason at most once a minute. */
  private readonly failures = new Map<string, ProblemLog>();
  /** Failed probes of the database between runs (at warn, the same reason at most once a minute). */
  private readonly probeFailures: ProblemLog;
  private probing = false;
  private probeClient: pg.Client | undefined;

  constructor(app: Located<AppConfig>, sources: readonly Located<SourceConfig>[], context: SourceContext) {
    super(app.id);
    this.connection = resolvePostgresApp(app).connection;
    this.refresh = (app.options as PostgresAppOptions).refresh;
    this.sources = sources.filter((s): s is PollingSource => s.type === "postgres-table-import" || s.type === "postgres-query-import");
    this.schedules = context.schedules ?? [];
    this.logger = context.logger;
    this.probeFailures = new ProblemLog(this.logger, "warn");
    for (const source of this.sources) {
      const stored = context.positions.get(this.stream(source.id));
      if (stored && source.type === "postgres-table-import") this.watermarks.set(source.id, JSON.parse(stored) as Watermark);
    }
  }

  private stream(sourceId: string): string {
    return `poll:${this.appId}:${sourceId}`;
  }

  /** Number of runs under way (a finished run leaves nothing behind). */
  get runsUnderWay(): number {
    return this.runs.size;
  }

  protected async read(): Promise<void> {
    try {
      await withClient(this.connection, (client) => client.query("SELECT 1"));
      this.connected = true;
    } catch (error) {
      this.logger.error({ err: error }, "cannot reach the database of the polling sources; the schedules will retry");
    }
    this.timers.push(repeat(POLLING_PROBE_MS, () => void this.probe()));
    for (const schedule of this.schedules) {
      void this.trigger(schedule.sourceId);
      if (schedule.recurring !== false) this.timers.push(repeat(schedule.recurringFrequency, () => void this.trigger(schedule.sourceId)));
    }
    if (this.refresh) this.timers.push(repeat(this.refresh.recurringFrequency, () => void this.checkRefresh()));
    await this.stopRequested;
    await Promise.allSettled([...this.runs]);
  }

  protected async interrupt(): Promise<void> {
    for (const timer of this.timers) timer.clear();
    await this.closeProbe();
  }

  /**
   * Asks the database whether it answers, while no run is under way (a run's own outcome says it
   * then): readiness follows the answer, and a failure is logged at warn (once a minute per reason).
   */
  private async probe(): Promise<void> {
    if (this.stopped || this.probing || this.runs.size > 0) return;
    this.probing = true;
    try {
      if (!this.probeClient) {
        const client = new pg.Client({ connectionTimeoutMillis: 10_000, ...this.connection });
        // A server going away fails the next query; the event alone must not crash the process.
        client.on("error", () => undefined);
        this.probeClient = client;
        await client.connect();
      }
      await this.probeClient.query("SELECT 1");
      if (this.stopped) await this.closeProbe();
      else if (this.runs.size === 0) {
        if (!this.connected && this.probeFailures.count > 0) this.logger.info("the database of the polling sources answers again");
        this.connected = true;
        this.probeFailures.clear();
      }
    } catch (error) {
      await this.closeProbe();
      if (!this.stopped && this.runs.size === 0) {
        this.connected = false;
        this.probeFailures.report(classifyPostgresError(error as Error).reason, {}, "the database of the polling sources does not answer: not ready until it does", error);
      }
    } finally {
      this.probing = false;
    }
  }

  private async closeProbe(): Promise<void> {
    const client = this.probeClient;
    this.probeClient = undefined;
    await client?.end().catch(() => undefined);
  }

  /**
   * Runs a source now unless a run of it is under way: true once it read everything, false when it
   * failed or was stopped part-way (a drain, a reload).
   */
  trigger(sourceId: string): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    const source = this.sources.find((s) => s.id === sourceId);
    if (!source) return Promise.resolve(false);
    const under = this.running.get(sourceId);
    if (under) return under;
    const run: Promise<boolean> = (source.type === "postgres-table-import" ? this.importTable(source) : this.importQuery(source))
      .then((finished) => {
        if (!finished) return false;
        this.connected = true;
        this.problems.delete(sourceId);
        this.failures.delete(sourceId);
        this.logger.debug({ source: sourceId }, "polling run complete");
        return true;
      })
      .catch((error: Error) => {
        const { permanent, reason } = classifyPostgresError(error);
        if (permanent) this.problems.set(sourceId, reason);
        else this.connected = false;
        this.lastFailure.set(sourceId, { permanent, reason });
        let log = this.failures.get(sourceId);
        if (!log) this.failures.set(sourceId, (log = new ProblemLog(this.logger, permanent ? "error" : "warn")));
        log.report(reason, { source: sourceId }, "polling run failed; the next scheduled run retries", error);
        return false;
      })
      .finally(() => {
        this.running.delete(sourceId);
        this.runs.delete(run);
        // The refresh query saw a change while this run was under way: it may have read before it.
        if (this.again.delete(sourceId)) void this.trigger(sourceId);
      });
    this.runs.add(run);
    this.running.set(sourceId, run);
    return run;
  }

  /**
   * Reads sources again (a Run): a table import from no high watermark (its rows upserted again), a query
   * import at once; then the Run's completion marker.
   */
  async reread(request: RereadRequest): Promise<void> {
    const runStream = `run:${request.runId}`;
    const marker = (position: string): Change => ({ sourceId: request.sourceIds[0] ?? "", op: "marker", key: "", before: null, after: null, position: { stream: runStream, position }, commitTime: Date.now() });
    void (async () => {
      for (const sourceId of request.sourceIds) {
        for (let attempt = 0; ; attempt += 1) {
          // A run under way finishes first (and one that follows it): the re-read starts after them,
          // from no watermark, as a run of its own.
          for (let under = this.running.get(sourceId); under; under = this.running.get(sourceId)) await under;
          this.watermarks.delete(sourceId);
          if (await this.trigger(sourceId)) break;
          if (this.stopped) return;
          // A permanent problem (a missing table or column, permission denied) fails the Run; a database
          // that does not answer now is tried again, as the schedules do, rather than leave the Run
          // failed until the next start.
          const failure = this.lastFailure.get(sourceId);
          if (failure?.permanent !== false) {
            this.emit(marker(`failed:reading source ${sourceId} again failed: ${failure?.reason ?? "see the log"}`));
            return;
          }
          await Promise.race([new Promise((r) => setTimeout(r, Math.min(REREAD_RETRY_MS * 2 ** attempt, 30_000))), this.stopRequested]);
          if (this.stopped) return;
        }
      }
      this.emit(marker("complete"));
    })();
  }

  private async checkRefresh(): Promise<void> {
    if (!this.refresh || this.stopped) return;
    try {
      const { rows } = await withClient(this.connection, (client) => client.query(this.refresh?.query ?? "SELECT 1"));
      const value = JSON.stringify(rows);
      if (this.lastRefresh !== undefined && value !== this.lastRefresh) {
        this.logger.info("refresh query changed: running the app's schedules now");
        for (const schedule of this.schedules) {
          // A run under way may have read before the change: one more follows it.
          if (this.running.has(schedule.sourceId)) this.again.add(schedule.sourceId);
          else void this.trigger(schedule.sourceId);
        }
      }
      this.lastRefresh = value;
    } catch (error) {
      this.logger.warn({ err: error }, "refresh query failed");
    }
  }

  private typeConflict(oid: number): void {
    this.logger.warn({ oid }, TYPE_CONFLICT);
  }

  /** Reads the table from the last position; false when stopped part-way. */
  private async importTable(source: TableImport): Promise<boolean> {
    const table = qualifyTable(source.options.table);
    const column = quoteIdent(source.options.highWatermarkColumn);
    const batchSize = source.options.batchSize ?? 1000;
    return withClient(this.connection, async (client) => {
      await registerTypesOf(client, (oid) => this.typeConflict(oid));
      const keys = await primaryKeyColumns(client, table);
      if (keys.length === 0) throw new PermanentError(`${table} has no primary key: rows of a table import need one`);
      const order = [column, ...keys.map(quoteIdent)].join(", ");
      // The watermark and the key travel as text and are compared in the columns' own types.
      const typeOf = async (name: string): Promise<string | undefined> =>
        (
          await client.query<{ type: string | null }>(
            `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
            [quoteTable(table), name],
          )
        ).rows[0]?.type ?? undefined;
      const type = await typeOf(source.options.highWatermarkColumn);
      if (!type) throw new PermanentError(`${table} has no column ${source.options.highWatermarkColumn}`);
      const keyTypes: string[] = [];
      for (const key of keys) keyTypes.push((await typeOf(key)) ?? "text");
      const added = new Set([HW, ...keys.map((_, i) => KEY + i)]);
      const keyText = keys.map((k, i) => `${quoteIdent(k)}::text AS ${quoteIdent(KEY + i)}`).join(", ");
      const keyRow = `(${keys.map(quoteIdent).join(", ")})`;
      const keyParams = keyTypes.map((t, i) => `$${i + 3}::text::${t}`).join(", ");
      let mark: Watermark = this.watermarks.get(source.id) ?? { hw: null, offset: 0 };
      // A watermark the column no longer reads (its type changed since) would fail every run: the
      // table is read from the start, as a fresh import reads it.
      if (mark.hw !== null && !(await this.fits(client, [mark.hw], [type]))) {
        this.logger.warn({ source: source.id, column: source.options.highWatermarkColumn, type }, "the stored high watermark does not read as the column's type now: the table is imported from the start");
        mark = { hw: null, offset: 0 };
      }
      // A key this run reads is the table's own; a stored one is checked once.
      let keyFits = mark.key !== undefined && mark.key.length === keys.length && (await this.fits(client, mark.key, keyTypes));
      if (mark.key !== undefined && !keyFits) this.logger.warn({ source: source.id, key: mark.key, types: keyTypes }, "the stored position's key does not read as the table's primary key now: its ties resume by offset");
      for (;;) {
        await this.waitWhilePaused();
        if (this.stopped) return false;
        // Past the last row read, in (watermark, primary key) order: the rows sharing its watermark
        // after it, then every greater watermark (`>=` first, so an index of the column alone gives
        // the range, as the page query did before). An offset over all rows >= the watermark would skip
        // a row updated since to a greater watermark once for each row read at the old one.
        let rows: (Row & { [HW]: string })[];
        if (mark.hw === null) {
          ({ rows } = await client.query<Row & { [HW]: string }>(
            `SELECT *, ${column}::text AS ${HW}, ${keyText} FROM ${quoteTable(table)}
              WHERE ${column} IS NOT NULL ORDER BY ${order} LIMIT $1`,
            [batchSize],
          ));
        } else if (mark.key && keyFits) {
          ({ rows } = await client.query<Row & { [HW]: string }>(
            `SELECT *, ${column}::text AS ${HW}, ${keyText} FROM ${quoteTable(table)}
              WHERE ${column} >= $1::text::${type} AND (${column} > $1::text::${type} OR ${keyRow} > (${keyParams}))
              ORDER BY ${order} LIMIT $2`,
            [mark.hw, batchSize, ...mark.key],
          ));
        } else {
          // A position without a key (written by an earlier version), or whose key the table's primary
          // key no longer reads (its columns or types changed since): the ties by offset.
          ({ rows } = await client.query<Row & { [HW]: string }>(
            `SELECT * FROM (
               (SELECT *, ${column}::text AS ${HW}, ${keyText} FROM ${quoteTable(table)}
                 WHERE ${column} = $1::text::${type} ORDER BY ${order} OFFSET $3)
               UNION ALL
               (SELECT *, ${column}::text AS ${HW}, ${keyText} FROM ${quoteTable(table)}
                 WHERE ${column} > $1::text::${type})
             ) AS page ORDER BY ${order} LIMIT $2`,
            [mark.hw, batchSize, mark.offset],
          ));
        }
        for (const row of rows) {
          const hw = row[HW];
          const key = keys.map((_, i) => String(row[KEY + i]));
          mark = hw === mark.hw ? { hw, offset: mark.offset + 1, key } : { hw, offset: 1, key };
          const values: Record<string, unknown> = {};
          for (const [name, value] of Object.entries(row)) if (!added.has(name)) values[name] = value;
          this.emit({
            sourceId: source.id,
            op: "update",
            key: rowKey(keys, values),
            before: null,
            after: values,
            position: { stream: this.stream(source.id), position: JSON.stringify(mark) },
            commitTime: Date.now(),
          });
        }
        this.watermarks.set(source.id, mark);
        if (rows.length > 0) keyFits = true;
        if (rows.length < batchSize) return true;
      }
    });
  }

  /**
   * Whether stored text values (a watermark, a key) read as these column types now (the types may
   * have changed since they were stored): one that does not would fail every run.
   */
  private async fits(client: pg.Client, values: readonly string[], types: readonly string[]): Promise<boolean> {
    try {
      await client.query(`SELECT ${types.map((t, i) => `$${i + 1}::text::${t}`).join(", ")}`, [...values]);
      return true;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === "string" && code.startsWith("22")) return false;
      throw error;
    }
  }

  /**
   * Each run of a query import is a snapshot of its rows: what the query returns is upserted, and once
   * all of it is applied, the rows it did not return are removed (their properties go back to null, or,
   * for a primary source, their records are deleted), as a fresh import would have them.
   */
  private async importQuery(source: QueryImport): Promise<boolean> {
    const mapped = Object.keys(source.mapping);
    const started = new Date().toISOString();
    const snapshotId = `query:${started}`;
    const position = { stream: this.stream(source.id), position: started };
    return withClient(this.connection, async (client) => {
      await registerTypesOf(client, (oid) => this.typeConflict(oid));
      // Read through a cursor, QUERY_ROWS_PER_READ rows at a time as the pipeline takes them: the whole
      // result held at once (as before 2026-12-03) took memory in proportion to it, and a query over
      // millions of rows could exhaust the process's. The cursor's portal reads one snapshot.
      // The cursor is never closed here, neither after a failed read nor on a stop: the client ends
      // with this run (withClient; an active query makes end() destroy the socket), and a close waits
      // for an answer a connection the server ended meanwhile (terminated while the run was paused)
      // never gives: a stop then hung for ever.
      const cursor = client.query(new Cursor<Row>(source.options.query));
      for (;;) {
        const rows = await cursor.read(QUERY_ROWS_PER_READ);
        if (rows.length === 0) break;
        for (const row of rows) {
          await this.waitWhilePaused();
          if (this.stopped) return false;
          // A row is keyed by its mapped columns: one NULL there identifies no record (keyed "null", it
          // made a record of that id, and every such row replaced the one before). It is set aside.
          const unkeyed = mapped.find((column) => row[column] === null || row[column] === undefined);
          if (unkeyed !== undefined) {
            const reason = `postgres-query-import source ${source.id}: the query returned a row whose mapped column ${unkeyed} is NULL; it identifies no record and is not imported`;
            this.setAsideUnkeyed(source.id, reason, row, position);
            continue;
          }
          this.emit({ sourceId: source.id, op: "snapshot", key: rowKey(mapped, row), before: null, after: row, position, commitTime: Date.now(), snapshotId });
        }
      }
      this.emit({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime: Date.now(), snapshotComplete: { snapshotId, sourceIds: [source.id] } });
      return true;
    });
  }

  /**
   * Sets aside a query row that has no key (a dead letter, with the row), once per row and source
   * while the daemon runs: every run returns it again, and a schedule may run every second.
   */
  private setAsideUnkeyed(sourceId: string, reason: string, row: Row, position: { stream: string; position: string }): void {
    let text: string;
    try {
      text = JSON.stringify(row);
    } catch {
      text = String(Object.keys(row));
    }
    const seen = this.unkeyed.get(sourceId) ?? new Set<string>();
    this.unkeyed.set(sourceId, seen);
    if (seen.has(text)) return;
    if (seen.size >= 10_000) seen.clear();
    seen.add(text);
    this.emit({ sourceId, op: "marker", key: "", before: null, after: null, position, commitTime: Date.now(), deadLetter: { reason, payload: row } });
  }

  async acknowledge(): Promise<void> {
    // Positions live in the state; there is nothing to confirm upstream.
  }

  ready(): boolean {
    return this.connected && !this.stopped;
  }

  problem(): string | null {
    if (this.stopped || this.problems.size === 0) return null;
    return [...this.problems].map(([source, reason]) => `source ${source}: ${reason}`).join("; ");
  }
}

const pollingSource = (type: string, options: typeof PostgresTableImportOptions | typeof PostgresQueryImportOptions): SourceComponent => ({
  type,
  appType: "postgres",
  options,
  polling: true,
  // The rows per query change how a table import pages, not what it reads.
  ...(type === "postgres-table-import" ? { operationalOptions: ["batchSize"] } : {}),
  connector: "postgres-polling",
  metrics: [],
  // Added to a state that holds records, or replaced, a polling source is read again by a Run, after
  // the removals its change plans: its connector reads it whole on its first run anyway, but that run
  // may come before the replaced source's rows are removed (which would take the new rows with them),
  // and only a Run's rebuild after it gives every record its aggregates (a record with no rows
  // included: count and sum 0). So it reads twice at the start that adds it.
  needsReread: () => true,
  checkLive: checkPostgresSources,
  create: (app, sources, context) => new PostgresPollingSource(app, sources, context),
});

export const postgresTableImportSource = pollingSource("postgres-table-import", PostgresTableImportOptions);
export const postgresQueryImportSource = pollingSource("postgres-query-import", PostgresQueryImportOptions);
