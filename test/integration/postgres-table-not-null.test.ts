// The live check of a postgres-table destination against columns its writes cannot fill: a NOT NULL
// column without a default that the mapping does not write (every insert fails, 23502), and a
// groupsColumn whose type cannot hold the group names (every write fails, 22P02). Both are data errors
// to Postgres, so each export was dead-lettered, one at a time, none of them at fault, while `run` and
// `validate --connect` said nothing. The live check now refuses them (78 at start, a reload refused),
// naming the columns: the NOT NULL one for sync and additive (enrich only updates); a mapped column,
// the groups column, a default, an identity or a generated column pass; text[], varchar[], text and
// jsonb take the group names.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppConfig, DestinationConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import type { SyncMode } from "../../core/vocabulary.js";
import { checkPostgresTableDestination } from "../../connectors/postgres/live.js";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import type { DeliveryError } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

describe("postgres-table live check: columns its writes cannot fill", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(testPgUrl(), "table_not_null");
  });
  afterEach(async () => {
    await db.drop();
  });

  it("is refused by the live check naming them, unless enrich; mapped, grouped, defaulted, identity and generated columns pass", async () => {
    await db.query(`CREATE TABLE crm (
      id int PRIMARY KEY, email text NOT NULL, name text NOT NULL, region text NOT NULL, segments text[] NOT NULL,
      created timestamptz NOT NULL DEFAULT now(), serial_no int GENERATED ALWAYS AS IDENTITY, twice int GENERATED ALWAYS AS (id * 2) STORED, note text)`);
    const origin = { file: "config.yml", index: 0 };
    const app = { class: "app", id: "db", type: "postgres", options: { connectionString: db.url }, origin } as unknown as Located<AppConfig>;
    const destination = (syncMode: SyncMode, mapping: Record<string, string>) =>
      ({ class: "destination", id: "crm", type: "postgres-table", appId: "db", modelId: "users", collection: "model", syncMode, mapping, options: { table: "crm", primaryKey: "id", groupsColumn: "segments" }, origin }) as unknown as Located<DestinationConfig>;
    const messages = async (syncMode: SyncMode, mapping: Record<string, string>) => (await checkPostgresTableDestination(destination(syncMode, mapping), app)).map((p) => [p.permanent, p.message]);
    const mapping = { id: "user_id", email: "email" };
    const refused = [[true, "table public.crm has NOT NULL columns name, region without a default, which the mapping does not write: every insert would fail (map a property to them, give them a default, or drop NOT NULL)"]];
    expect(await messages("sync", mapping)).toEqual(refused);
    expect(await messages("additive", mapping)).toEqual(refused);
    expect(await messages("enrich", mapping)).toEqual([]);
    expect(await messages("sync", { ...mapping, name: "first_name" })).toEqual([[true, "table public.crm has NOT NULL column region without a default, which the mapping does not write: every insert would fail (map a property to it, give it a default, or drop NOT NULL)"]]);
    expect(await messages("sync", { ...mapping, name: "first_name", region: "region" })).toEqual([]);

    // What it spares: started anyway, every insert fails as a data error (each export a dead letter).
    const crm = new PostgresTableDestination("crm", { connectionString: db.url }, { table: "crm", primaryKey: "id", groupsColumn: "segments", syncMode: "sync", fieldTypes: {} });
    try {
      const failed = await crm.deliver([{ seq: 1, destinationId: "crm", recordId: "1", oldRecordProperties: {}, newRecordProperties: { id: 1, email: "a@example.com" }, oldGroups: [], newGroups: [], toDelete: false, updateOnly: false, commitTime: 0 }]).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect({ retryable: (failed as DeliveryError).retryable, code: /\(23502\)/.test((failed as DeliveryError).message) }).toEqual({ retryable: false, code: true });
    } finally {
      await crm.stop();
    }
  });

  it("refuses a groupsColumn that cannot hold the group names (text), naming its type; text[], varchar[], text and jsonb pass", async () => {
    await db.query("CREATE TABLE typed (id int PRIMARY KEY, email text, g_int int[], g_bool boolean, g_text text[], g_varchar varchar(40)[], g_plain text, g_jsonb jsonb)");
    const origin = { file: "config.yml", index: 0 };
    const app = { class: "app", id: "db", type: "postgres", options: { connectionString: db.url }, origin } as unknown as Located<AppConfig>;
    const check = async (groupsColumn: string) =>
      (await checkPostgresTableDestination({ class: "destination", id: "crm", type: "postgres-table", appId: "db", modelId: "users", collection: "model", syncMode: "sync", mapping: { id: "user_id", email: "email" }, options: { table: "typed", primaryKey: "id", groupsColumn }, origin } as unknown as Located<DestinationConfig>, app)).map((p) => p.message);
    expect(await check("g_int")).toEqual(["its groupsColumn g_int of table public.typed is of type integer[], which cannot hold the group names (text): make it text[] (or varchar[], text, json, jsonb)"]);
    expect(await check("g_bool")).toEqual(["its groupsColumn g_bool of table public.typed is of type boolean, which cannot hold the group names (text): make it text[] (or varchar[], text, json, jsonb)"]);
    for (const ok of ["g_text", "g_varchar", "g_plain", "g_jsonb"]) expect(await check(ok)).toEqual([]);
    // What it spares: each write into the int[] column failed as a data error (22P02), every export dead-lettered.
    const crm = new PostgresTableDestination("crm", { connectionString: db.url }, { table: "typed", primaryKey: "id", groupsColumn: "g_int", syncMode: "sync", fieldTypes: {} });
    try {
      const failed = await crm.deliver([{ seq: 1, destinationId: "crm", recordId: "1", oldRecordProperties: {}, newRecordProperties: { id: 1, email: "a@example.com" }, oldGroups: [], newGroups: ["VIP"], toDelete: false, updateOnly: false, commitTime: 0 }]).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect({ retryable: (failed as DeliveryError).retryable, code: /\(22P02\)/.test((failed as DeliveryError).message) }).toEqual({ retryable: false, code: true });
      // The text and jsonb columns take them.
      for (const column of ["g_plain", "g_jsonb", "g_varchar"]) {
        const writer = new PostgresTableDestination("crm", { connectionString: db.url }, { table: "typed", primaryKey: "id", groupsColumn: column, syncMode: "sync", fieldTypes: {} });
        try {
          expect(await writer.deliver([{ seq: 2, destinationId: "crm", recordId: "1", oldRecordProperties: {}, newRecordProperties: { id: 1, email: "a@example.com" }, oldGroups: [], newGroups: ["VIP"], toDelete: false, updateOnly: false, commitTime: 0 }])).toEqual([{ seq: 2, status: "ok" }]);
        } finally {
          await writer.stop();
        }
      }
    } finally {
      await crm.stop();
    }
  });
});
