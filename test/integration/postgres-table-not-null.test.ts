// A postgres-table destination whose table has a NOT NULL column without a default that the mapping
// does not write: every insert fails (23502, a data error), so each export was dead-lettered, one at a
// time, none of them at fault, while `run` and `validate --connect` said nothing. The live check now
// refuses such a sync or additive destination (78 at start, a reload refused), naming the columns;
// enrich (it only updates), a mapped column, the groups column, a default, an identity or a generated
// column pass.
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import type { AppConfig, DestinationConfig } from "../../core/config/schema.js";
import type { Located } from "../../core/config/types.js";
import type { SyncMode } from "../../core/vocabulary.js";
import { checkPostgresTableDestination } from "../../connectors/postgres/live.js";
import { PostgresTableDestination } from "../../connectors/postgres/table.js";
import type { DeliveryError } from "../../connectors/types.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";

describe("postgres-table: NOT NULL columns the mapping does not write", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase(inject("pgUrl"), "table_not_null");
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
});
