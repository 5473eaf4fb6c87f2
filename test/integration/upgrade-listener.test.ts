// While the daemon upgrades a state of the previous layout (real Postgres, the daemon in process, the
// upgrade cut into one-key chunks so that it lasts), its listener already answers: /healthz 200,
// /readyz 503 with the upgrade's progress, /metrics 200 (with the layout it upgrades to), and the API's
// reads 503 until the upgrade is done; then its thread reads the upgraded state.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { STATE_FORMAT, UPGRADE_CHUNK } from "../../state/store.js";
import { freePort } from "../services/process.js";
import { concreteShop, SHOP_DATA, SHOP_SCHEMA, shopConfig } from "../helpers/converge.js";
import { waitFor } from "../helpers/daemon.js";
import { asLayout3 } from "../helpers/layout.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const logger = () => pino({ level: process.env.TEST_LOG ?? "silent" });

interface Answer {
  path: string;
  status: number;
  body: string;
}

describe("the listener while the state is upgraded", () => {
  const work = mkdtempSync(join(tmpdir(), "upgrade-listener-"));
  const chunk = UPGRADE_CHUNK.keys;
  afterEach(() => {
    UPGRADE_CHUNK.keys = chunk;
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("answers the probes and /metrics from before the upgrade begins, the API's reads 503, and reads the state once it is upgraded", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase(testPgUrl(), "upgradelisten");
    let daemon: Daemon | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const config = join(work, "config.json");
      const state = join(work, "state");
      writeFileSync(config, JSON.stringify(concreteShop(shopConfig(), db.url, "upgradelisten", "crm")));
      const http = `127.0.0.1:${await freePort()}`;
      const options = { config, state, http, apiInsecure: true };

      const first = await Daemon.start(options, logger());
      if (typeof first === "number") throw new Error(`the first daemon did not start (${first})`);
      await waitFor("the snapshot applied", async () => (first.state.countOf("records", "users") >= 3 ? true : undefined));
      const users = first.state.countOf("records", "users");
      await first.drain("SIGTERM");
      await first.finished;
      const rewritten = await asLayout3(state);
      expect(rewritten).toBeGreaterThan(50);

      // One key per chunk: more than 50 durable transactions, each a turn of the event loop.
      UPGRADE_CHUNK.keys = 1;
      const answers: Answer[] = [];
      let started = false;
      const starting = Daemon.start(options, logger()).finally(() => (started = true));
      const get = async (path: string): Promise<Answer | undefined> => {
        try {
          const response = await fetch(`http://${http}${path}`);
          return { path, status: response.status, body: await response.text() };
        } catch {
          return undefined; // not listening yet
        }
      };
      while (!started) {
        for (const path of ["/readyz", "/healthz", "/metrics", "/api/v1/runs"]) {
          const answer = await get(path);
          if (answer) answers.push(answer);
        }
      }
      const result = await starting;
      if (typeof result === "number") throw new Error(`the daemon did not start on the old layout (${result})`);
      daemon = result;

      const upgrading = answers.filter((a) => a.path === "/readyz" && a.body.startsWith("not ready: starting: upgrading the state's layout"));
      expect(upgrading.length).toBeGreaterThan(0);
      for (const a of upgrading) {
        expect(a.status).toBe(503);
        expect(a.body).toMatch(/^not ready: starting: upgrading the state's layout \(\d+ of \d+ keys read\)\n$/);
      }
      // The probes and the scrape answered from the first answer on; the API's reads waited.
      expect(answers.filter((a) => a.path === "/healthz").every((a) => a.status === 200 && a.body === "ok\n")).toBe(true);
      const scrapes = answers.filter((a) => a.path === "/metrics");
      expect(scrapes.length).toBeGreaterThan(0);
      for (const a of scrapes) {
        expect(a.status).toBe(200);
        expect(a.body).toMatch(new RegExp(`^grouparoo_build_info\\{version="[^"]+",node="${process.version}",layout="${STATE_FORMAT}"\\} 1$`, "m"));
      }
      // The API's reads made before the last answer that saw the upgrade under way.
      const during = answers.slice(0, answers.lastIndexOf(upgrading[upgrading.length - 1] as Answer)).filter((a) => a.path === "/api/v1/runs");
      expect(during.length).toBeGreaterThan(0);
      for (const a of during) {
        expect(a.status).toBe(503);
        expect(JSON.parse(a.body)).toEqual({ error: { code: "UNAVAILABLE", message: "the daemon is upgrading the state to this version's layout; try again once it is ready (/readyz)" } });
      }

      // Started: the API thread reads the upgraded state.
      await waitFor("ready", async () => ((await get("/readyz"))?.status === 200 ? true : undefined));
      const records = await get("/api/v1/groups");
      expect(records?.status).toBe(200);
      expect(daemon.state.countOf("records", "users")).toBe(users);
      const runs = await get("/api/v1/runs");
      expect(runs?.status).toBe(200);
    } finally {
      if (daemon) {
        await daemon.drain("SIGTERM");
        await daemon.finished;
      }
      await db.drop();
    }
  });
});
