// A relative-date group tracked by a postgres-table destination in sync mode, through the daemon
// process under a host TZ far from UTC: a record leaves the group (and is deleted at the destination)
// when its last visit passes out of "the last 1 day", at that instant while the daemon runs, and at
// once on the next start when the instant passed while it was stopped; a zone-less timestamp is UTC.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const DAY = 86_400_000;

describe("relative-date exits through the daemon", () => {
  const work = mkdtempSync(join(tmpdir(), "relative-exit-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("deletes at the destination at the exit instant, and at the next start for one that passed while stopped", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "relexit");
    let daemon: DaemonProcess | undefined;
    try {
      await db.query("CREATE TABLE visitors (id int PRIMARY KEY, seen timestamp, seen_tz timestamptz)");
      await db.query("CREATE TABLE crm (id int PRIMARY KEY, seen timestamptz, segments text[])");
      const now = Date.now();
      const utcText = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
      // 1 leaves 8 s after now (zone-less column); 2 stays; 3 leaves 25 s after now (timestamptz, written with an offset).
      await db.query(`INSERT INTO visitors VALUES (1, '${utcText(now - DAY + 8000)}', NULL), (2, '${utcText(now)}', NULL), (3, NULL, '${new Date(now - DAY + 25_000).toISOString().replace("Z", "+00:00")}')`);
      const config = [
        { class: "app", id: "db", type: "postgres", options: { connectionString: db.url, slot: "relexit_slot", publication: "relexit_pub" } },
        { class: "model", id: "visitors" },
        { class: "source", id: "visitors_table", type: "postgres-cdc", appId: "db", modelId: "visitors", options: { table: "visitors" }, mapping: { id: "visitor_id" } },
        { class: "property", id: "visitor_id", type: "integer", unique: true, sourceId: "visitors_table", options: { column: "id" } },
        { class: "property", id: "seen", type: "date", sourceId: "visitors_table", options: { column: "seen" } },
        { class: "property", id: "seen_tz", type: "date", sourceId: "visitors_table", options: { column: "seen_tz" } },
        {
          class: "group",
          id: "recent",
          modelId: "visitors",
          matchType: "any",
          rules: [
            { propertyId: "seen", op: "relative_gt", relativeMatchNumber: 1, relativeMatchUnit: "days" },
            { propertyId: "seen_tz", op: "relative_gt", relativeMatchNumber: 1, relativeMatchUnit: "days" },
          ],
        },
        {
          class: "destination",
          id: "crm",
          type: "postgres-table",
          appId: "db",
          modelId: "visitors",
          collection: "group",
          groupId: "recent",
          syncMode: "sync",
          options: { table: "crm", primaryKey: "id", groupsColumn: "segments" },
          mapping: { id: "visitor_id", seen: "seen" },
          destinationGroupMemberships: { Recent: "recent" },
        },
      ];
      const file = join(work, "config.json");
      writeFileSync(file, JSON.stringify(config));
      const state = join(work, "state");
      const env = { ...process.env, TZ: "Pacific/Kiritimati" };
      const ids = async () => (await db.query<{ id: number }>("SELECT id FROM crm ORDER BY id")).rows.map((r) => r.id);
      const start = async () => {
        const http = `127.0.0.1:${await freePort()}`;
        const d = startDaemon(["--config", file, "--state", state], http, env);
        await d.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
        return d;
      };
      daemon = await start();
      await daemon.until("all three at the destination", async () => (JSON.stringify(await ids()) === "[1,2,3]" ? true : undefined));
      expect((await db.query("SELECT id, seen, segments FROM crm WHERE id = 1")).rows[0]).toMatchObject({ id: 1, segments: ["Recent"] });
      // Stopped before 1's exit; started again after it.
      daemon.child.kill("SIGTERM");
      expect(await daemon.exited).toEqual({ code: 0, signal: null });
      const wait = now + 8000 + 1500 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      daemon = await start();
      const restarted = Date.now();
      await daemon.until("1 gone at the next start", async () => (JSON.stringify(await ids()) === "[2,3]" ? true : undefined), 10_000, 50);
      expect(Date.now() - restarted).toBeLessThan(5000);
      // 3 leaves while the daemon runs, at its instant.
      await daemon.until("3 gone at its exit", async () => (JSON.stringify(await ids()) === "[2]" ? true : undefined), 40_000, 50);
      const late = Date.now() - (now + 25_000);
      expect(late).toBeGreaterThanOrEqual(0);
      expect(late).toBeLessThan(3000);
      expect(sample((await get(daemon.http, "/metrics")).body, 'grouparoo_group_members{group="recent"}')).toBe(1);
      daemon.child.kill("SIGTERM");
      expect(await daemon.exited).toEqual({ code: 0, signal: null });
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  });
});
