// Exports a webhook rejected (dead letters) are re-queued with `retry-exports` and delivered once the
// webhook accepts them again.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { runCli } from "../helpers/cli.js";
import { get, sample, startDaemon, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { startReceiver, usersToWebhook } from "../helpers/remote.js";
import { testPgUrl } from "../services/use.js";

describe("grouparoo-stream retry-exports", () => {
  const work = mkdtempSync(join(tmpdir(), "retry-exports-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("re-queues dead-lettered exports of a destination, which are then delivered", { timeout: 90_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "retry");
    const receiver = await startReceiver();
    receiver.respond = () => ({ status: 400 });
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
      await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 5) g`);
      writeFileSync(
        join(work, "config.yml"),
        usersToWebhook(db.url, receiver.url),
      );
      const args = ["--config", join(work, "config.yml"), "--state", join(work, "state")];
      let http = `127.0.0.1:${await freePort()}`;
      let daemon = startDaemon(args, http);
      const dead = await waitFor("dead letters", async () => {
        const text = (await get(http, "/metrics")).body;
        return sample(text, 'grouparoo_exports_total{destination="crm",result="dead_letter"}') === 5 ? text : undefined;
      }, 30_000);
      // Counted as dead letters too, like changes and messages (the "new dead letters" alert reads it).
      expect(sample(dead, 'grouparoo_dead_letters_total{component="crm",kind="export"}')).toBe(5);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
      expect(receiver.records.size).toBe(0);

      receiver.respond = () => ({ status: 200 });
      const retried = await runCli(["retry-exports", ...args, "--destination", "crm", "--since", new Date(Date.now() - 3_600_000).toISOString()]);
      expect(retried).toEqual({ code: 0, stdout: "re-queued 5 exports for destination crm\n", stderr: "" });
      const again = await runCli(["retry-exports", ...args, "--destination", "crm"]);
      expect(again.stdout).toBe("re-queued 0 exports for destination crm\n");
      const unknown = await runCli(["retry-exports", ...args, "--destination", "nope"]);
      expect(unknown).toEqual({ code: 78, stdout: "", stderr: `error: no destination "nope" in ${join(work, "config.yml")}\n` });

      http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(args, http);
      await waitFor("delivered", async () => (receiver.records.size === 5 ? true : undefined), 30_000);
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
      expect(receiver.records.get("3")).toEqual({ properties: { id: 3, email: "u3@example.com" }, groups: [] });
    } finally {
      await receiver.close();
      await db.drop();
    }
  });
});
