// Re-reading tables while the stream goes on (Debezium's incremental snapshot, the DBLog algorithm):
// a table is read in chunks ordered by primary key; each chunk is read between a low and a high
// watermark written into the change stream as logical messages, keys that stream past inside that
// window are dropped from the chunk (a streamed change always beats the chunk row), and at the high
// watermark the rest of the chunk enters the stream at that point. The last key read is the Run's
// progress, durable with the chunk's rows, so a crash resumes the chunk, not the table.
import type { Row } from "../../../core/change.js";
import type { RereadRequest } from "../../types.js";
import { primaryKey, quoteIdent, quoteTable, withClient } from "../introspect.js";
import type { PostgresAppSettings } from "../settings.js";
import type { CapturedTable } from "./slot.js";
import { WATERMARK_PREFIX, type ChunkWindow, type PgoutputChanges } from "./stream.js";

const CHUNK_ROWS = 1000;

/** Where a re-read stands: the table being read, the last primary key read in it (as text), rows so far. */
interface RereadProgress {
  table: number;
  after: string[] | null;
  rows: number;
}

export interface RereadContext {
  settings: PostgresAppSettings;
  tables: readonly CapturedTable[];
  decoder: PgoutputChanges;
  /** Resolves when the stream is connected (watermarks are seen only then) and the source is not paused. */
  ready(): Promise<void>;
  stopped(): boolean;
  /** Resolves when the source stops. */
  stopRequested: Promise<void>;
}

/** Reads the request's tables again, a chunk at a time; resolves when the last chunk is in the stream. */
/** Re-reads the tables in chunks; "stopped", or the last progress (every row read) once complete. */
export async function rereadTables(request: RereadRequest, context: RereadContext): Promise<RereadProgress | "stopped"> {
  const { settings, decoder } = context;
  const tables = request.sourceIds.map((id) => context.tables.find((t) => t.sourceId === id)).filter((t): t is CapturedTable => t !== undefined);
  const progress: RereadProgress = request.resumeFrom ? (JSON.parse(request.resumeFrom) as RereadProgress) : { table: 0, after: null, rows: 0 };
  let chunk = 0;
  while (progress.table < tables.length) {
    const { sourceId, table } = tables[progress.table] as CapturedTable;
    const keys = await withClient(settings.connection, (client) => primaryKey(client, table));
    if (keys.length === 0) throw new Error(`${table} has no primary key: it cannot be read again in chunks`);
    const keyColumns = keys.map((k) => k.name);
    const keyList = keyColumns.map(quoteIdent).join(", ");
    const keyParams = keys.map((k, i) => `$${i + 1}::${k.type}`).join(", ");
    for (;;) {
      await context.ready();
      if (context.stopped()) return "stopped";
      chunk += 1;
      const id = `${request.runId}/${chunk}`;
      // The window waits before the low watermark is written: the stream may reach it before the chunk is read.
      let inStream: (how: "arrived" | "skipped") => void = () => undefined;
      const arrived = new Promise<"arrived" | "skipped">((resolve) => (inStream = resolve));
      const window: ChunkWindow = {
        id,
        table,
        sourceId,
        keyColumns,
        rows: [],
        progress: { stream: `run:${request.runId}`, position: "" },
        open: false,
        changed: new Set(),
        truncated: false,
        done: () => inStream("arrived"),
        skipped: () => inStream("skipped"),
      };
      decoder.window = window;
      const read = await withClient(settings.connection, async (client) => {
        // Each watermark is its own committed transaction, so it takes its place in commit order.
        await client.query(`SELECT pg_logical_emit_message(true, $1, $2)`, [WATERMARK_PREFIX, `low ${id}`]);
        const where = progress.after === null ? "" : `WHERE (${keyList}) > (${keyParams})`;
        const result = await client.query<Row & { __grouparoo_key: string[] }>(
          `SELECT *, ARRAY[${keyColumns.map((k) => `${quoteIdent(k)}::text`).join(", ")}] AS __grouparoo_key FROM ${quoteTable(table)} ${where} ORDER BY ${keyList} LIMIT ${CHUNK_ROWS}`,
          progress.after ?? [],
        );
        return result.rows;
      });
      const last = read[read.length - 1];
      const next: RereadProgress = { table: progress.table, after: last ? last.__grouparoo_key : progress.after, rows: progress.rows + read.length };
      const finished = read.length < CHUNK_ROWS;
      const position = finished ? { ...next, table: progress.table + 1, after: null } : next;
      window.rows = read.map(({ __grouparoo_key: _key, ...row }) => row as Row);
      window.progress = { stream: `run:${request.runId}`, position: JSON.stringify(position) };
      await withClient(settings.connection, (client) => client.query(`SELECT pg_logical_emit_message(true, $1, $2)`, [WATERMARK_PREFIX, `high ${id}`]));
      const how = await Promise.race([arrived, context.stopRequested]);
      if (context.stopped()) return "stopped";
      // The slot was moved past its watermarks (a publication made later, source.ts): read it again.
      if (how === "skipped") continue;
      Object.assign(progress, position);
      if (finished) break;
    }
  }
  return progress;
}
