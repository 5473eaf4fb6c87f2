// A worker's /readyz with a destination that fails (DESIGN: /readyz is 200 only while every source is
// connected and every destination reachable; README, "What an operator should know"). Before
// 2026-12-03 a worker looked only at its consumer group and its takeovers, so it stayed ready while
// every export of its partitions failed; now it answers 503 naming the destination and its problem, as
// `run` does, and is ready again once the destination takes the exports.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Relay } from "../../daemon/relay.js";
import { Worker } from "../../daemon/worker.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const USERS = 20;

describe("a worker's /readyz", () => {
  const work = mkdtempSync(join(tmpdir(), "worker-readyz-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "worker_readyz");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is 503 naming a failing destination, and 200 once it takes the exports", { timeout: 180_000 }, async () => {
    const names = scaleNames("workerready");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, testKafkaBrokers(), names, { partitioned: true, partitions: 2 })));
    for (const sql of scaleWrites(0, USERS)) await db.query(sql);
    const http = async () => `127.0.0.1:${await freePort()}`;
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http: await http(), maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const address = await http();
    const worker = await Worker.start({ config: file, state: join(work, "worker"), http: address, maxBatchDelayMs: 2, drainTimeoutMs: 2000, delivery: { baseBackoffMs: 200, maxBackoffMs: 500 } }, quiet);
    if (typeof worker === "number") throw new Error(`worker exit ${worker}`);
    const depth = async () => sample((await get(address, "/metrics")).body, 'grouparoo_outbox_depth{destination="crm"}');
    try {
      const users = Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);
      await waitFor("the worker delivered", async () => ((await get(address, "/readyz")).status === 200 && (await depth()) === 0 && Number((await db.query("SELECT count(*) AS n FROM crm")).rows[0]?.n) === users ? true : undefined), 90_000);

      // The destination's table goes away, and the next changes' exports fail.
      await db.query(`ALTER TABLE crm RENAME TO crm_away`);
      for (const sql of scaleWrites(1, USERS)) await db.query(sql);
      const down = await waitFor("the worker not ready", async () => {
        const r = await get(address, "/readyz");
        return r.status === 503 ? r : undefined;
      }, 60_000);
      expect(down.body).toMatch(/^not ready: destinations failing: crm \(.*crm.*\)\n$/);

      await db.query(`ALTER TABLE crm_away RENAME TO crm`);
      await waitFor("the worker ready again, its exports delivered", async () => ((await get(address, "/readyz")).status === 200 && (await depth()) === 0 ? true : undefined), 60_000);
    } finally {
      await worker.drain("SIGTERM");
      await worker.finished;
      await relay.drain("SIGTERM");
      await relay.finished;
    }
  });
});
