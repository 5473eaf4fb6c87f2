// The initial snapshot: the captured tables read inside the slot's exported snapshot (REPEATABLE READ
// and SET TRANSACTION SNAPSHOT), through a cursor a chunk at a time, pausing under backpressure. What
// it reads is exactly the tables as of the slot's consistent point: no gap, no double with the stream.
import { rowKey, type Change, type Row } from "../../../core/change.js";
import type { SourceObserver } from "../../types.js";
import { primaryKeyColumns, quoteTable, withClient } from "../introspect.js";
import type { PostgresAppSettings } from "../settings.js";
import type { CapturedTable } from "./slot.js";

const SNAPSHOT_CHUNK = 1000;

export interface SnapshotReader {
  /** The stream the snapshot's positions belong to. */
  stream: string;
  emit(change: Change): void;
  waitWhilePaused(): Promise<void>;
  stopped(): boolean;
  /** The row without its excluded columns (column.exclude.list). */
  withoutExcluded(table: string, row: Row): Row;
  observer: SourceObserver | undefined;
}

/**
 * The rows a table holds by Postgres's statistics: pg_class.reltuples, or, for a table never vacuumed
 * nor analyzed (reltuples -1 since Postgres 14: a table just loaded or restored), the planner's estimate
 * from its size. It was 0 then, and the dashboard's progress (read over estimated) infinite.
 */
export async function estimateRows(client: { query<R extends object>(sql: string, values?: unknown[]): Promise<{ rows: R[] }> }, quoted: string): Promise<number> {
  const stats = await client.query<{ n: string }>(`SELECT reltuples::bigint AS n FROM pg_class WHERE oid = $1::regclass`, [quoted]);
  const known = Number(stats.rows[0]?.n ?? -1);
  if (known >= 0) return known;
  const plan = await client.query<{ "QUERY PLAN": [{ Plan: { "Plan Rows": number } }] }>(`EXPLAIN (FORMAT JSON) SELECT * FROM ${quoted}`);
  return Math.max(0, Math.round(plan.rows[0]?.["QUERY PLAN"][0].Plan["Plan Rows"] ?? 0));
}

/** Reads every captured table in the exported snapshot, then emits the marker that completes it. */
export async function readSnapshot(settings: PostgresAppSettings, tables: readonly CapturedTable[], snapshotName: string, consistentPoint: string, reader: SnapshotReader): Promise<number> {
  return withClient(settings.connection, async (client) => {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName}'`);
    const started = Date.now();
    let rows = 0;
    for (const { sourceId, table } of tables) {
      const keyColumns = await primaryKeyColumns(client, table);
      const estimated = await estimateRows(client, quoteTable(table));
      let read = 0;
      reader.observer?.snapshotProgress?.(sourceId, table, 0, estimated);
      const cursor = `snapshot_${sourceId.replace(/[^A-Za-z0-9_]/g, "_")}`;
      await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT * FROM ${quoteTable(table)}`);
      for (;;) {
        await reader.waitWhilePaused();
        if (reader.stopped()) throw new Error("stopped during the snapshot");
        const batch = await client.query<Row>(`FETCH ${SNAPSHOT_CHUNK} FROM ${cursor}`);
        read += batch.rows.length;
        reader.observer?.snapshotProgress?.(sourceId, table, read, estimated);
        for (const row of batch.rows) {
          rows += 1;
          reader.emit({
            sourceId,
            op: "snapshot",
            key: rowKey(keyColumns, row),
            before: null,
            after: reader.withoutExcluded(table, row),
            position: { stream: reader.stream, position: `running:${consistentPoint}` },
            commitTime: started,
            snapshotId: consistentPoint,
          });
        }
        if (batch.rows.length < SNAPSHOT_CHUNK) break;
      }
      // Read to its end: the count is known now, and the progress ends at 1.
      reader.observer?.snapshotProgress?.(sourceId, table, read, read);
      await client.query(`CLOSE ${cursor}`);
    }
    await client.query("COMMIT");
    reader.emit({
      sourceId: tables[0]?.sourceId ?? "",
      op: "marker",
      key: "",
      before: null,
      after: null,
      position: { stream: reader.stream, position: `complete:${consistentPoint}` },
      commitTime: Date.now(),
      snapshotComplete: { snapshotId: consistentPoint, sourceIds: tables.map((t) => t.sourceId) },
    });
    return rows;
  });
}
