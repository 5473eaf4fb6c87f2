// postgres-table destination: one statement per batch and kind of write, in one transaction: an
// upsert by `primaryKey` (INSERT ... SELECT FROM json_populate_recordset ... ON CONFLICT DO UPDATE),
// an UPDATE-only form for enrich (records the table does not hold are skipped as info), and a
// DELETE for toDelete. The mapped group names go into the optional text[] `groupsColumn`. It never
// creates or alters tables. Integrity and data errors reject the batch (split to isolate the bad
// records); anything else (connection, server restart) is retried.
import pg from "pg";
import { Type, type Static } from "@sinclair/typebox";
import type { FieldProblem } from "../../core/config/types.js";
import type { PropertyType } from "../../core/vocabulary.js";
import { DeliveryError, type DeliverableExport, type DestinationComponent, type DestinationConnector, type ExportResult } from "../types.js";
import { qualifyTable } from "./debezium.js";
import { quoteIdent, quoteTable } from "./introspect.js";
import { classifyPostgresError } from "./errors.js";
import { checkPostgresTableDestination } from "./live.js";
import { resolvePostgresApp } from "./settings.js";

export const PostgresTableOptions = Type.Object(
  {
    table: Type.String({ minLength: 1, description: "Target table (schema.table or table in public); never created." }),
    primaryKey: Type.String({ minLength: 1, description: "Target column upserted on; must be a remote field of the mapping." }),
    groupsColumn: Type.Optional(Type.String({ minLength: 1, description: "text[] column holding the mapped group names." })),
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

export class PostgresTableDestination implements DestinationConnector {
  private readonly pool: pg.Pool;
  /** Connections of batches being written. */
  private readonly busy = new Set<pg.PoolClient>();
  private reachable = true;
  /** A permanent problem of the table or the connection (errors.ts), until a batch goes through. */
  private failing: string | null = null;

  constructor(
    readonly destinationId: string,
    connection: pg.PoolConfig,
    private readonly table: string,
    private readonly primaryKey: string,
    private readonly groupsColumn: string | undefined,
    private readonly fieldTypes: Readonly<Record<string, PropertyType>>,
    statementTimeoutMs = DESTINATION_STATEMENT_TIMEOUT_MS,
  ) {
    this.pool = new pg.Pool({ statement_timeout: statementTimeoutMs, ...connection, max: 4 });
    this.pool.on("error", () => (this.reachable = false));
  }

  private row(e: DeliverableExport): Record<string, unknown> {
    const row: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(e.newRecordProperties)) {
      // Dates travel as epoch ms; the table gets ISO timestamps.
      row[field] = this.fieldTypes[field] === "date" && typeof value === "number" ? new Date(value).toISOString() : Array.isArray(value) && this.fieldTypes[field] === "date" ? value.map((v) => (typeof v === "number" ? new Date(v).toISOString() : v)) : value;
    }
    if (this.groupsColumn) row[this.groupsColumn] = e.newGroups;
    return row;
  }

  async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
    const table = quoteTable(qualifyTable(this.table));
    const pk = quoteIdent(this.primaryKey);
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
      await client.query("BEGIN");
      if (deletes.length > 0) {
        const keys = deletes.map((e) => String(e.oldRecordProperties[this.primaryKey] ?? e.newRecordProperties[this.primaryKey]));
        await client.query(`DELETE FROM ${table} WHERE ${pk}::text = ANY($1::text[])`, [keys]);
      }
      const columns = [...new Set([...Object.keys(batch[0]?.newRecordProperties ?? {}), ...(this.groupsColumn ? [this.groupsColumn] : [])])];
      const list = columns.map(quoteIdent).join(", ");
      if (upserts.length > 0) {
        const set = columns.filter((c) => c !== this.primaryKey).map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`);
        await client.query(
          `INSERT INTO ${table} (${list}) SELECT ${list} FROM json_populate_recordset(NULL::${table}, $1::json)
           ON CONFLICT (${pk}) DO ${set.length > 0 ? `UPDATE SET ${set.join(", ")}` : "NOTHING"}`,
          [JSON.stringify(upserts.map((e) => this.row(e)))],
        );
      }
      if (updates.length > 0) {
        const set = columns.filter((c) => c !== this.primaryKey).map((c) => `${quoteIdent(c)} = r.${quoteIdent(c)}`);
        const updated = await client.query<{ key: string }>(
          `UPDATE ${table} t SET ${set.join(", ")} FROM json_populate_recordset(NULL::${table}, $1::json) r WHERE t.${pk} = r.${pk} RETURNING t.${pk}::text AS key`,
          [JSON.stringify(updates.map((e) => this.row(e)))],
        );
        const found = new Set(updated.rows.map((r) => r.key));
        for (const e of updates) {
          if (!found.has(String(e.newRecordProperties[this.primaryKey]))) results.set(e.seq, { seq: e.seq, status: "info", message: "enrich: the table has no such record" });
        }
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
      throw new DeliveryError(`writing ${this.table} failed (${code || "no code"}): ${(error as Error).message}`, !rejected);
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
    const { primaryKey } = destination.options as PostgresTableOptions;
    const propertyId = Object.hasOwn(destination.mapping, primaryKey) ? destination.mapping[primaryKey] : undefined;
    const problems: FieldProblem[] = [];
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
    return new PostgresTableDestination(destination.id, connection, options.table, options.primaryKey, options.groupsColumn, context.fieldTypes, options.statementTimeoutMs);
  },
};
