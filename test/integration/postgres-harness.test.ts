// Proves the Postgres test service: logical replication with pgoutput delivers a committed insert.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from "pg-logical-replication";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("Postgres test service", () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "harness");
    await db.query(`CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, active boolean)`);
    await db.query(`CREATE PUBLICATION harness_pub FOR TABLE users`);
    await db.query(`SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')`);
  });

  afterAll(async () => {
    await db?.drop();
  });

  it("runs with wal_level=logical and room for replication slots", async () => {
    const { rows } = await db.query<{ wal_level: string; slots: string; senders: string }>(
      `SELECT current_setting('wal_level') AS wal_level,
              current_setting('max_replication_slots') AS slots,
              current_setting('max_wal_senders') AS senders`,
    );
    expect(rows[0]).toEqual({ wal_level: "logical", slots: "40", senders: "40" });
  });

  it("streams an inserted row through pg-logical-replication with pgoutput", async () => {
    const service = new LogicalReplicationService(
      { connectionString: db.url },
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    );
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: ["harness_pub"] });
    const received = new Promise<Pgoutput.MessageInsert>((resolve) => {
      service.on("data", (_lsn: string, message: Pgoutput.Message) => {
        if (message.tag === "insert") resolve(message);
      });
    });
    const failed = new Promise<never>((_, reject) => service.on("error", reject));
    void service.subscribe(plugin, "harness_slot").catch(() => undefined);
    try {
      await db.query(`INSERT INTO users (id, email, active) VALUES (1, 'ada@example.com', true)`);
      const insert = await Promise.race([received, failed]);
      expect(insert.relation.schema).toBe("public");
      expect(insert.relation.name).toBe("users");
      expect(insert.new).toEqual({ id: 1, email: "ada@example.com", active: true });
    } finally {
      await service.stop();
    }
  });
});
