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

/** Reads every captured table in the exported snapshot, then emits the marker that completes it. */
export async function readSnapshot(settings: PostgresAppSettings, tables: readonly CapturedTable[], snapshotName: string, consistentPoint: string, reader: SnapshotReader): Promise<number> {
  return withClient(settings.connection, async (client) => {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName}'`);
    const started = Date.now();
    let rows = 0;
    for (const { sourceId, table } of tables) {
      const keyColumns = await primaryKeyColumns(client, table);
      const estimate = await client.query<{ n: string }>(`SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = $1::regclass`, [quoteTable(table)]);
      const estimated = Number(estimate.rows[0]?.n ?? 0);
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
