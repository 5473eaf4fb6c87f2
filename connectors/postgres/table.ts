// postgres-table destination: a batch in one transaction: a DELETE for toDelete and (sync) for the
// old key of a record whose primaryKey changed, then an upsert by `primaryKey` (INSERT ... SELECT FROM
// json_populate_recordset ... ON CONFLICT DO UPDATE) or, for enrich, an UPDATE (records the table does
// not hold are skipped as info), one per set of columns the exports carry (exports planned under
// different mappings). The mapped group names go into the optional text[] `groupsColumn`. It never
// creates or alters tables. Integrity and data errors reject the batch (split to isolate the bad
// records); anything else (connection, server restart) is retried.
import pg from "pg";
import { Type, type Static } from "@sinclair/typebox";
import type { FieldProblem } from "../../core/config/types.js";
import type { PropertyType, SyncMode } from "../../core/vocabulary.js";
import { DeliveryError, type DeliverableExport, type DestinationComponent, type DestinationConnector, type ExportResult } from "../types.js";
import { qualifyTable } from "./debezium.js";
import { quoteIdent, quoteTable } from "./introspect.js";
import { classifyPostgresError } from "./errors.js";
import { checkPostgresTableDestination } from "./live.js";
import { resolvePostgresApp } from "./settings.js";

export const PostgresTableOptions = Type.Object(
  {
    table: Type.String({ minLength: 1, description: "Target table (schema.table or table in public); never created." }),
    primaryKey: Type.String({ minLength: 1, description: "Target column upserted on; must be a remote field of the mapping and, in sync and additive mode, have a unique constraint or index of exactly that column." }),
    groupsColumn: Type.Optional(Type.String({ minLength: 1, description: "text[] column holding the mapped group names; not a remote field of the mapping." })),
    statementTimeoutMs: Type.Optional(
      Type.Integer({ minimum: 0, default: 60_000, description: "How long one statement of a batch may run (a write behind a lock) before it fails and is retried, as an attempt; 0: no limit." }),
    ),
  },
  { additionalProperties: false },
);
type PostgresTableOptions = Static<typeof PostgresTableOptions>;

/**
 * How long one statement of a batch may run unless `statementTimeoutMs` says otherwise: a write behind a
 * lock someone holds fails after it (and is retried with backoff, logged), rather than hang with nothing said.
 */
export const DESTINATION_STATEMENT_TIMEOUT_MS = 60_000;

/** What a postgres-table destination writes, and how (from its options, sync mode and mapping). */
export interface PostgresTableSettings {
  table: string;
  primaryKey: string;
  groupsColumn?: string;
  /** sync: a record whose primary key changed also leaves the row under its old key. */
  syncMode: SyncMode;
  /** The type of each mapped remote field (dates are converted). */
  fieldTypes: Readonly<Record<string, PropertyType>>;
  statementTimeoutMs?: number;
}

/** Rows grouped by their set of columns, in the order each set first appears, each with its item of `items` (same index), if given. */
function byColumns<T = never>(rows: readonly Record<string, unknown>[], items: readonly T[] = []): [string[], Record<string, unknown>[], T[]][] {
  const groups = new Map<string, [string[], Record<string, unknown>[], T[]]>();
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as Record<string, unknown>;
    const columns = Object.keys(row).sort();
    const key = JSON.stringify(columns);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = [columns, [], []]));
    group[1].push(row);
    if (i < items.length) group[2].push(items[i] as T);
  }
  return [...groups.values()];
}

export class PostgresTableDestination implements DestinationConnector {
  private readonly pool: pg.Pool;
  /** Connections of batches being written. */
  private readonly busy = new Set<pg.PoolClient>();
  private reachable = true;
  /** A permanent problem of the table or the connection (errors.ts), until a batch goes through. */
  private failing: string | null = null;
  /** The table's date and time columns, once a batch needed them (loadDateColumns). */
  private dateColumns: Set<string> | undefined;

  constructor(
    readonly destinationId: string,
    connection: pg.PoolConfig,
    private readonly settings: PostgresTableSettings,
  ) {
    this.pool = new pg.Pool({ statement_timeout: settings.statementTimeoutMs ?? DESTINATION_STATEMENT_TIMEOUT_MS, ...connection, max: 4 });
    this.pool.on("error", () => (this.reachable = false));
  }

  /**
   * Whether a remote field holds dates: by the mapping's property type; a field the mapping no longer
   * has (an export planned under an earlier mapping, still queued when it changed) by the table's
   * column type (`dateColumns`), since its values are epoch ms all the same.
   */
  private isDateField(field: string): boolean {
    const type = Object.hasOwn(this.settings.fieldTypes, field) ? this.settings.fieldTypes[field] : undefined;
    return type === undefined ? (this.dateColumns?.has(field) ?? false) : type === "date";
  }

  /** The row an export writes; `groups` null: its properties alone (a key to delete by). */
  private row(properties: Record<string, unknown>, groups: readonly string[] | null): Record<string, unknown> {
    const { groupsColumn } = this.settings;
    const row: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(properties)) {
      // Dates travel as epoch ms; the table gets ISO timestamps.
      const date = (typeof value === "number" || Array.isArray(value)) && this.isDateField(field);
      row[field] = date && typeof value === "number" ? new Date(value).toISOString() : date && Array.isArray(value) ? value.map((v: unknown) => (typeof v === "number" ? new Date(v).toISOString() : v)) : value;
    }
    if (groupsColumn && groups !== null) row[groupsColumn] = groups;
    return row;
  }

  /**
   * The table's date and time columns (and arrays of them), read once, when a batch carries a field
   * the mapping does not type: a field of an earlier mapping, whose epoch ms would otherwise be
   * written as a number into a timestamp column (a data error: the export dead-lettered).
   */
  private async loadDateColumns(client: pg.PoolClient, exports: readonly DeliverableExport[]): Promise<void> {
    if (this.dateColumns !== undefined) return;
    // Asked of every batch until a field outside the mapping shows up (normally never): no allocation.
    const { fieldTypes } = this.settings;
    const untyped = (properties: Record<string, unknown>): boolean => {
      for (const field in properties) if (!Object.hasOwn(fieldTypes, field)) return true;
      return false;
    };
    if (!exports.some((e) => untyped(e.newRecordProperties) || untyped(e.oldRecordProperties))) return;
    const { rows } = await client.query<{ name: string }>(
      `SELECT a.attname AS name FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND (t.typcategory = 'D' OR e.typcategory = 'D')`,
      [quoteTable(qualifyTable(this.settings.table))],
    );
    this.dateColumns = new Set(rows.map((r) => r.name));
  }

  /**
   * sync: the row a record held under its old primary key, when the key changed (a fresh export has
   * no row there), with the columns to check it still holds what the record put there: another
   * record may have taken the key in an earlier batch (two records swapping keys across batches),
   * and its row stays. Only columns of both the old and the new mapping are compared.
   */
  private movedFrom(e: DeliverableExport): Record<string, unknown> | null {
    const { primaryKey, groupsColumn } = this.settings;
    const before = e.oldRecordProperties[primaryKey];
    if (before === null || before === undefined || e.toDelete || e.updateOnly) return null;
    const after = e.newRecordProperties[primaryKey];
    if (after !== null && after !== undefined && String(before) === String(after)) return null;
    const old = this.row(e.oldRecordProperties, e.oldGroups);
    const row: Record<string, unknown> = {};
    for (const column of Object.keys(old)) {
      if (column === groupsColumn || Object.hasOwn(e.newRecordProperties, column)) row[column] = old[column];
    }
    row[primaryKey] = old[primaryKey];
    return row;
  }

  async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
    const { primaryKey, syncMode } = this.settings;
    const table = quoteTable(qualifyTable(this.settings.table));
    const pk = quoteIdent(primaryKey);
    const latest = new Map<string, DeliverableExport>();
    for (const e of batch) latest.set(e.recordId, e);
    const deletes = [...latest.values()].filter((e) => e.toDelete);
    const upserts = [...latest.values()].filter((e) => !e.toDelete && !e.updateOnly);
    const updates = [...latest.values()].filter((e) => !e.toDelete && e.updateOnly);
    const results = new Map<number, ExportResult>(batch.map((e) => [e.seq, { seq: e.seq, status: "ok" }]));
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      const { permanent, reason } = classifyPostgresError(error);
      this.reachable = false;
      this.failing = permanent ? reason : null;
      throw new DeliveryError(`connecting to the destination database failed: ${reason}`, true);
    }
    this.reachable = true;
    this.busy.add(client);
    try {
      await this.loadDateColumns(client, batch);
      const moved = syncMode === "sync" ? upserts.map((e) => this.movedFrom(e)).filter((row) => row !== null) : [];
      await client.query("BEGIN");
      // Deletes first: a key a record leaves in this batch may be the one another record takes.
      // Keys compared as the column's type compares them (as the upsert does), not as text: an
      // upper-case uuid, or 1.5 in a numeric(10,2) column, is the row's key all the same.
      if (deletes.length > 0) {
        const keys = deletes.map((e) => this.row({ [primaryKey]: e.oldRecordProperties[primaryKey] ?? e.newRecordProperties[primaryKey] ?? null }, null));
        await client.query(`DELETE FROM ${table} t USING json_populate_recordset(NULL::${table}, $1::json) r WHERE t.${pk} = r.${pk}`, [JSON.stringify(keys)]);
      }
      for (const [columns, rows] of byColumns(moved)) {
        const same = columns.filter((c) => c !== primaryKey).map((c) => ` AND t.${quoteIdent(c)}::text IS NOT DISTINCT FROM r.${quoteIdent(c)}::text`);
        await client.query(`DELETE FROM ${table} t USING json_populate_recordset(NULL::${table}, $1::json) r WHERE t.${pk} = r.${pk}${same.join("")}`, [JSON.stringify(rows)]);
      }
      // One statement per set of columns: an export planned under another mapping (or a delete's
      // old properties) writes its own columns, and leaves the others as they are.
      for (const [columns, rows] of byColumns(upserts.map((e) => this.row(e.newRecordProperties, e.newGroups)))) {
        const list = columns.map(quoteIdent).join(", ");
        const set = columns.filter((c) => c !== primaryKey).map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`);
        await client.query(
          `INSERT INTO ${table} (${list}) SELECT ${list} FROM json_populate_recordset(NULL::${table}, $1::json)
           ON CONFLICT (${pk}) DO ${set.length > 0 ? `UPDATE SET ${set.join(", ")}` : "NOTHING"}`,
          [JSON.stringify(rows)],
        );
      }
      // Which exports found their row: by each row's place in its statement's input (the key as the
      // column compares it may not be the text the export carries).
      const found = new Set<DeliverableExport>();
      for (const [columns, rows, exports] of byColumns(updates.map((e) => this.row(e.newRecordProperties, e.newGroups)), updates)) {
        const set = columns.filter((c) => c !== primaryKey).map((c) => `${quoteIdent(c)} = r.${quoteIdent(c)}`);
        const from = `json_array_elements($1::json) WITH ORDINALITY AS input(doc, n), LATERAL json_populate_record(NULL::${table}, input.doc) r`;
        // Nothing mapped but the key: nothing to write, only whether the table has the record.
        const sql = set.length > 0 ? `UPDATE ${table} t SET ${set.join(", ")} FROM ${from} WHERE t.${pk} = r.${pk} RETURNING input.n AS n` : `SELECT input.n AS n FROM ${from}, ${table} t WHERE t.${pk} = r.${pk}`;
        const written = await client.query<{ n: string }>(sql, [JSON.stringify(rows)]);
        for (const r of written.rows) {
          const e = exports[Number(r.n) - 1];
          if (e) found.add(e);
        }
      }
      for (const e of updates) {
        if (!found.has(e)) results.set(e.seq, { seq: e.seq, status: "info", message: "enrich: the table has no such record" });
      }
      await client.query("COMMIT");
      this.failing = null;
      return [...results.values()];
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      const code = (error as { code?: string }).code ?? "";
      // Class 22 (data exception) and 23 (integrity constraint): the data is at fault, not the link:
      // rejected (split to isolate the bad records, which are dead-lettered). A missing table or
      // column, or permission denied, is the destination's own problem: retried, named on /readyz.
      const rejected = code.startsWith("22") || code.startsWith("23");
      const { permanent, reason } = classifyPostgresError(error);
      this.failing = !rejected && permanent ? reason : null;
      throw new DeliveryError(`writing ${this.settings.table} failed (${code || "no code"}): ${(error as Error).message}`, !rejected);
    } finally {
      this.busy.delete(client);
      client.release();
    }
  }

  ready(): boolean {
    return this.reachable && this.failing === null;
  }

  problem(): string | null {
    return this.failing;
  }

  /**
   * Called once the delivery loop stopped (after its drain): a batch still being written (behind a
   * lock, say) is abandoned. Its connection is closed, so its transaction does not commit (unless its
   * COMMIT was already on its way); either way its exports stay in the outbox and are sent again, and
   * the writes are idempotent. Ending the pool would otherwise wait for it.
   */
  async stop(): Promise<void> {
    for (const client of this.busy) {
      client.on("error", () => undefined);
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }
    await this.pool.end();
  }
}

export const postgresTableDestination: DestinationComponent = {
  type: "postgres-table",
  appType: "postgres",
  options: PostgresTableOptions,
  operationalOptions: ["statementTimeoutMs"],
  metrics: [],
  check(destination, context) {
    const { primaryKey, groupsColumn } = destination.options as PostgresTableOptions;
    const propertyId = Object.hasOwn(destination.mapping, primaryKey) ? destination.mapping[primaryKey] : undefined;
    const problems: FieldProblem[] = [];
    // The group names are written into groupsColumn after the mapped fields: one column cannot hold both.
    if (groupsColumn !== undefined && Object.hasOwn(destination.mapping, groupsColumn)) {
      problems.push({ field: ["options", "groupsColumn"], message: `"${groupsColumn}" is also a remote field of the mapping (property "${destination.mapping[groupsColumn]}"): the group names would overwrite its values; choose another column` });
    }
    if (propertyId === undefined) problems.push({ field: ["options", "primaryKey"], message: `"${primaryKey}" is not a remote field of the mapping` });
    else if (context.property(propertyId)?.unique === false) {
      problems.push({ field: ["options", "primaryKey"], message: `"${primaryKey}" maps property "${propertyId}", which is not unique` });
    }
    return problems;
  },
  checkLive: checkPostgresTableDestination,
  create(destination, app, context) {
    const options = destination.options as PostgresTableOptions;
    const { connection } = resolvePostgresApp(app);
    const { table, primaryKey, groupsColumn, statementTimeoutMs } = options;
    return new PostgresTableDestination(destination.id, connection, { table, primaryKey, groupsColumn, syncMode: destination.syncMode, fieldTypes: context.fieldTypes, statementTimeoutMs });
  },
};
