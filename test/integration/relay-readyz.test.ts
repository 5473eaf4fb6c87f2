// The relay's /readyz with a source that has a permanent problem (README, "The postgres-cdc source": a
// captured table made again or dropped "under a relay (which cannot read a table again: deploy anew)
// ... the app is not ready, /readyz and an error line name the table"). Before 2026-12-03 the relay
// asked its sources only whether they were connected, so it stayed ready while its log said the table
// was gone; now it answers 503 naming the app and the problem, as `run` does, and is ready again once
// the table is back.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresCdcSource } from "../../connectors/postgres/cdc/source.js";
import { Relay } from "../../daemon/relay.js";
import { freePort } from "../services/process.js";
import { get, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

describe("the relay's /readyz", () => {
  const work = mkdtempSync(join(tmpdir(), "relay-readyz-"));
  let db: TestDatabase;
  const checkMs = PostgresCdcSource.tableCheckMs;
  beforeAll(async () => {
    PostgresCdcSource.tableCheckMs = 300;
    db = await createTestDatabase(testPgUrl(), "relay_readyz");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    PostgresCdcSource.tableCheckMs = checkMs;
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is 503 naming the app and the table while a captured table is gone, and 200 once it is back", { timeout: 120_000 }, async () => {
    const names = scaleNames("relayready");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, testKafkaBrokers(), names, { partitioned: true, partitions: 2 })));
    const http = `127.0.0.1:${await freePort()}`;
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http, maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    try {
      await waitFor("the relay ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 60_000);
      await db.query(`ALTER TABLE purchases RENAME TO purchases_away`);
      const down = await waitFor("the relay not ready", async () => {
        const r = await get(http, "/readyz");
        return r.status === 503 ? r : undefined;
      }, 20_000);
      expect(down.body).toBe(
        "not ready: sources failing: shop (table public.purchases does not exist any more: the records and rows read from it (sources purchases_table) stay as they were, and a fresh start refuses this config (exit 78); take its sources out of the config, or make the table again)\n",
      );
      await db.query(`ALTER TABLE purchases_away RENAME TO purchases`);
      await waitFor("the relay ready again", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 20_000);
    } finally {
      await relay.drain("SIGTERM");
      await relay.finished;
    }
  });
});
