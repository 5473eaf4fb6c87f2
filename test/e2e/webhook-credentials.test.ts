// A webhook that refuses the daemon's credentials (401), through the daemon process, as an SRE sees it
// after a token rotation: /readyz names the destination and the answer, nothing is dead-lettered past
// --max-attempts, and once the webhook takes the credentials again every record arrives. Before, each
// 401 rejected its batch: split down to single exports, every one became a dead letter.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { startReceiver, usersToWebhook } from "../helpers/remote.js";
import { testPgUrl } from "../services/use.js";

describe("a webhook refusing the daemon's credentials", () => {
  const work = mkdtempSync(join(tmpdir(), "webhook-credentials-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("is named on /readyz, dead-letters nothing past --max-attempts, and gets every record once it accepts again", { timeout: 90_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "webhook_credentials");
    const receiver = await startReceiver();
    let refusals = 0;
    receiver.respond = () => (refusals++, { status: 401 });
    let daemon: DaemonProcess | undefined;
    try {
      await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text)`);
      await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 5) g`);
      writeFileSync(
        join(work, "config.yml"),
        usersToWebhook(db.url, receiver.url),
      );
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", join(work, "config.yml"), "--state", join(work, "state"), "--max-attempts", "2", "--max-backoff-ms", "200"], http);
      const readyz = await daemon.until("the webhook's problem on /readyz", async () => {
        const answer = await get(http, "/readyz");
        return answer.status === 503 && answer.body.includes("destinations failing: crm") ? answer.body : undefined;
      }, 30_000);
      expect(readyz).toContain(`answered 401 (its credentials are refused)`);
      // Well past --max-attempts (2): still retried, whole, and nothing dead-lettered.
      await daemon.until("six refusals", async () => (refusals >= 6 ? true : undefined), 30_000);
      const metrics = (await get(http, "/metrics")).body;
      expect(sample(metrics, 'grouparoo_exports_total{destination="crm",result="dead_letter"}') ?? 0).toBe(0);
      expect(sample(metrics, 'grouparoo_dead_letters_total{component="crm",kind="export"}') ?? 0).toBe(0);

      receiver.respond = () => ({ status: 200 });
      await daemon.until("every record delivered", async () => (receiver.records.size === 5 ? true : undefined), 30_000);
      await daemon.until("ready again", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 10_000);
      expect(receiver.records.get("3")).toEqual({ properties: { id: 3, email: "u3@example.com" }, groups: [] });
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await receiver.close();
      await db.drop();
    }
  });
});
