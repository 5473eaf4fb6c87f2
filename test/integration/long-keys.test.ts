// Keys longer than LMDB's (1978 bytes) against real Postgres and the daemon as a process: a row key
// (a record's id, or another source's row key) too long to key the state is a dead letter with its
// reason, a unique value too long to index is stored as null with its reason, the rest of the
// transaction is applied, the slot is acknowledged past it, and the daemon goes on (it used to exit
// 70 on every start: "Key size is larger than the maximum key size (1978)").
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { get, startDaemon } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("row keys and unique values too long for a key of the state", () => {
  const work = mkdtempSync(join(tmpdir(), "long-keys-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("dead-letters the change of a long row key, stores a long unique value as invalid, applies the rest and acknowledges", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "long_keys");
    try {
      await db.query(`CREATE TABLE things (k text PRIMARY KEY, v text)`);
      await db.query(`CREATE TABLE notes (id text PRIMARY KEY, thing text)`);
      writeFileSync(
        join(work, "config.yml"),
        `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: long_slot, publication: long_pub } }
- { class: model, id: things }
- { class: source, id: things_table, type: postgres-cdc, appId: shop, modelId: things, options: { table: things }, mapping: { k: thing_key } }
- { class: source, id: notes_table, type: postgres-cdc, appId: shop, modelId: things, options: { table: notes }, mapping: { thing: thing_key } }
- { class: property, id: thing_key, type: string, unique: true, sourceId: things_table, options: { column: k } }
- { class: property, id: label, type: string, unique: true, sourceId: things_table, options: { column: v } }
- { class: property, id: note_count, type: integer, sourceId: notes_table, options: { column: id, aggregationMethod: count } }
`,
      );
      const state = join(work, "state");
      const http = `127.0.0.1:${await freePort()}`;
      const daemon = startDaemon(["--config", join(work, "config.yml"), "--state", state], http);
      try {
        await daemon.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 60_000);
        // One transaction: a 3,000-character primary key, a 3,000-character unique value, a note with a
        // 3,000-character key, and rows that fit, before and after them.
        await db.query(`BEGIN;
          INSERT INTO things VALUES ('a', 'short');
          INSERT INTO things VALUES (repeat('x', 3000), 'long');
          INSERT INTO things VALUES ('b', repeat('y', 3000));
          INSERT INTO notes VALUES (repeat('n', 3000), 'a');
          INSERT INTO notes VALUES ('n1', 'a');
          INSERT INTO things VALUES ('c', 'after');
          COMMIT;`);
        const { rows } = await db.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
        const committed = rows[0]?.lsn ?? "";

        const read = <T>(body: (store: Store) => T): T => {
          const store = Store.open(state, { readOnly: true });
          try {
            return body(store);
          } finally {
            void store.close();
          }
        };
        await daemon.until("the transaction applied", async () => (read((s) => s.getRecord("things", "c")) ? true : undefined), 30_000);
        const letters = read((s) => s.sourceDeadLetters().map((l) => ({ kind: l.kind, sourceId: l.sourceId, reason: l.reason, keyLength: l.change.key.length, op: l.change.op })));
        expect(letters).toEqual([
          { kind: "change", sourceId: "things_table", op: "insert", keyLength: 3000, reason: 'the row key of source "things_table" (its record\'s id) is 3000 bytes in UTF-8, more than the 800 bytes the state can key it by' },
          { kind: "change", sourceId: "notes_table", op: "insert", keyLength: 3000, reason: 'the row key of source "notes_table" is 3000 bytes in UTF-8, more than the 800 bytes the state can key it by' },
        ]);
        const records = read((s) => [...s.recordsOf("things")].map((r) => ({ id: r.id, values: r.values, invalid: r.invalid })));
        expect(records).toEqual([
          { id: "a", values: { thing_key: "a", label: "short", note_count: 1 }, invalid: {} },
          { id: "b", values: { thing_key: "b", label: null, note_count: 0 }, invalid: { label: "Value too long to be unique (3000 bytes in UTF-8, at most 800)" } },
          { id: "c", values: { thing_key: "c", label: "after", note_count: 0 }, invalid: {} },
        ]);

        // The slot is acknowledged past the transaction: a restart does not read it again.
        await daemon.until("the slot acknowledged past the transaction", async () => {
          const { rows: slot } = await db.query<{ past: boolean }>(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = 'long_slot'`, [committed]);
          return slot[0]?.past ? true : undefined;
        }, 30_000);
        expect(daemon.child.exitCode).toBeNull();
        expect((await get(http, "/healthz")).status).toBe(200);
        const metrics = (await get(http, "/metrics")).body;
        expect(metrics).toMatch(/grouparoo_dead_letters_total\{[^}]*component="things_table"[^}]*\} 1/);

        // And it goes on streaming.
        await db.query(`INSERT INTO things VALUES ('d', 'later')`);
        await daemon.until("a later row applied", async () => (read((s) => s.getRecord("things", "d")) ? true : undefined), 30_000);
        daemon.child.kill("SIGTERM");
        expect((await daemon.exited).code).toBe(0);
      } finally {
        if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill("SIGKILL");
      }
    } finally {
      await db.drop();
    }
  });
});
