// A column a property reads that the source's rows no longer have (dropped from the table while the
// daemon streams): the daemon logs it at error once, naming the source, the column and the property,
// and goes on streaming; the property reads null.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { get, killIfRunning, sample, startDaemon, waitFor, type DaemonProcess, logLines } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

const lines = logLines;

describe("a column the rows no longer have", () => {
  let db: TestDatabase;
  let work: string;
  let daemon: DaemonProcess | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "missing_col");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text, nickname text)`);
    await db.query(`INSERT INTO users VALUES (1, 'ada@example.com', 'ada')`);
    work = mkdtempSync(join(tmpdir(), "missing-col-"));
  });
  afterAll(async () => {
    await killIfRunning(daemon);
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is logged at error once, naming the source, the column and the property, and streaming goes on", { timeout: 60_000 }, async () => {
    const config = join(work, "config.yml");
    writeFileSync(
      config,
      `
- { class: app, id: db, type: postgres, options: { connectionString: "${db.url}", slot: missing_col_slot, publication: missing_col_pub } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: db, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, sourceId: users_table, options: { column: email } }
- { class: property, id: nickname, type: string, sourceId: users_table, options: { column: nickname } }
`,
    );
    const http = `127.0.0.1:${await freePort()}`;
    daemon = startDaemon(["--config", config, "--state", join(work, "state")], http);
    const records = async () => sample((await get(http, "/metrics")).body, 'grouparoo_records{model="users"}');
    await waitFor("the snapshot", async () => ((await records()) === 1 ? true : undefined), 30_000);
    const missing = () => lines(daemon as DaemonProcess).filter((l) => typeof l.msg === "string" && l.msg.includes('have no column "nickname"'));
    expect(missing()).toEqual([]);

    await db.query(`ALTER TABLE users DROP COLUMN nickname`);
    await db.query(`UPDATE users SET email = 'ada@example.org' WHERE id = 1`);
    await db.query(`INSERT INTO users VALUES (2, 'bob@example.com')`);
    await db.query(`INSERT INTO users VALUES (3, 'cy@example.com')`);
    await waitFor("the inserts", async () => ((await records()) === 3 ? true : undefined));
    await waitFor("the error", async () => (missing().length > 0 ? true : undefined));
    expect(missing()).toEqual([
      expect.objectContaining({
        level: 50,
        source: "users_table",
        column: "nickname",
        properties: ["nickname"],
        mapping: false,
        msg: expect.stringContaining('the rows of source "users_table" have no column "nickname" (read by property "nickname"): null is read from each such row on'),
      }),
    ]);
    expect((await get(http, "/readyz")).status).toBe(200);
  });
});
