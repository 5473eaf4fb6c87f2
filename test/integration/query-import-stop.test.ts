// A query import paused (backpressure) with its cursor open stops promptly even when the database
// ended its connection meanwhile (a DBA's pg_terminate_backend, idle_in_transaction_session_timeout,
// a failover): closing the cursor then waited for an answer the dead connection never gives.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { postgresTableImportSource, type PostgresPollingSource } from "../../connectors/postgres/polling.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { startSource, validConfig, type CdcRun } from "../helpers/cdc.js";
import { waitFor } from "../helpers/daemon.js";
import { testPgUrl } from "../services/use.js";

type Obj = Record<string, unknown>;

describe("postgres-query-import stop", () => {
  let db: TestDatabase;
  let run: CdcRun | undefined;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "qistop");
  });
  afterEach(async () => {
    await db.drop();
  });

  it("stops within seconds when paused on an open cursor whose connection the server ended", { timeout: 60_000 }, async () => {
    const query = "SELECT g AS id, g * 2 AS score, 'qistop-marker' AS tag FROM generate_series(1, 2500) g";
    const objects: Obj[] = [
      { class: "app", id: "pg", type: "postgres", options: { connectionString: db.url } },
      { class: "model", id: "users" },
      { class: "source", id: "totals", type: "postgres-query-import", appId: "pg", modelId: "users", options: { query }, mapping: { id: "user_id" } },
      { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "totals", options: { column: "id" } },
      { class: "property", id: "score", type: "integer", sourceId: "totals", options: { column: "score" } },
      { class: "schedule", id: "hourly", sourceId: "totals", recurringFrequency: 3_600_000 },
    ];
    run = startSource(validConfig(objects), postgresTableImportSource);
    // Paused as backpressure pauses it: the run waits before its first row, its cursor open.
    (run.connector as PostgresPollingSource).pause();
    const backend = async () =>
      (await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE query LIKE '%qistop-marker%' AND pid <> pg_backend_pid()`)).rows[0]?.pid;
    const pid = await waitFor("the query import's cursor", backend, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(run.received()).toBe(0);
    await db.query(`SELECT pg_terminate_backend($1)`, [pid]);
    await waitFor("the backend gone", async () => ((await backend()) === undefined ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 200));
    const stopping = run.stop().then(() => "stopped" as const);
    run = undefined;
    const outcome = await Promise.race([stopping, new Promise<"hung">((r) => setTimeout(() => r("hung"), 10_000))]);
    expect(outcome).toBe("stopped");
  });
});
