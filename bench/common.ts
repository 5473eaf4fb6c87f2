// Shared by the benchmarks: one-off SQL, and a source read into committed state until a count of
// changes (markers aside) is durable, timed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from "pg-logical-replication";
import type { SourceConnector } from "../connectors/types.js";
import { Store } from "../state/store.js";
import type { Domain } from "../core/domain.js";
import { flowIntoState } from "../streams/flow.js";

export async function sql(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

/**
 * The raw ceiling of the Postgres benchmarks: seconds for pg-logical-replication alone (no
 * acknowledgement, nothing kept) to decode `changes` inserts and updates from `slot`.
 */
export async function rawDecode(url: string, slot: string, publication: string, changes: number): Promise<number> {
  const service = new LogicalReplicationService({ connectionString: url }, { acknowledge: { auto: false, timeoutSeconds: 0 } });
  let rows = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    service.on("data", (_lsn: string, message: Pgoutput.Message) => {
      if (message.tag === "insert" || message.tag === "update") rows += 1;
      if (rows === changes) resolve();
    });
    service.on("error", reject);
    void service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] }), slot).catch(() => undefined);
  });
  const seconds = (performance.now() - started) / 1000;
  await service.stop();
  return seconds;
}

/** Seconds from subscribing to `source` until `count` of its changes are durable in a fresh state. */
export async function readIntoState(source: SourceConnector, domain: Domain, count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-state-"));
  const store = Store.open(dir);
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let applied = 0;
  const started = performance.now();
  const { pipeline, done } = flowIntoState([source], store, domain, {
    committed: (batch) => {
      // Markers (commits, keepalives) carry only positions: count the changes applied.
      for (const ops of batch.result?.applied.values() ?? []) for (const n of ops.values()) applied += n;
      if (applied >= count) finish();
    },
    failed: () => finish(),
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  pipeline.drain();
  await source.stop();
  await done;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}
