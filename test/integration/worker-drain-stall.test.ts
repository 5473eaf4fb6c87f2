// A worker told to stop (SIGTERM) while the broker does not answer (README, "The workers", SIGTERM):
// its partitions' last changelog transaction, leaving the consumer group and closing its clients all
// wait for Kafka, whose clients retry without end, so before 2026-12-03 the drain waited for ever and
// the worker never exited (systemd killed it at TimeoutStopSec). Now each step is bounded and the
// worker exits 0, saying what it left; nothing is lost: once the broker is back, the next worker
// restores the partitions from what the changelog holds and ends with every change delivered. Also
// (before 2026-12-03 it stayed ready) /readyz is 503 while a changelog transaction waits for the broker.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Relay } from "../../daemon/relay.js";
import { Worker } from "../../daemon/worker.js";
import { startKafka, type KafkaService } from "../services/kafka.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const USERS = 20;

describe("a worker stopped while the broker hangs", () => {
  const work = mkdtempSync(join(tmpdir(), "worker-drain-stall-"));
  let broker: KafkaService;
  let db: TestDatabase;
  beforeAll(async () => {
    broker = await startKafka();
    db = await createTestDatabase(testPgUrl(), "worker_drain_stall");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  }, 120_000);
  afterAll(async () => {
    broker?.thaw();
    await broker?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is not ready while its changelog waits, exits 0 within its bounds, and the next worker ends with every change delivered", { timeout: 240_000 }, async () => {
    const names = scaleNames("workerdrain");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, broker.brokers, names, { partitioned: true, partitions: 2 })));
    for (const sql of scaleWrites(0, USERS)) await db.query(sql);
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const state = join(work, "worker");
    const startWorker = async (logger = quiet) => {
      const address = `127.0.0.1:${await freePort()}`;
      const w = await Worker.start({ config: file, state, http: address, maxBatchDelayMs: 2, drainTimeoutMs: 2000 }, logger);
      if (typeof w === "number") throw new Error(`worker exit ${w}`);
      return { w, address };
    };
    const crm = async () => JSON.stringify((await db.query("SELECT id, name FROM crm ORDER BY id")).rows);
    const users = async () => JSON.stringify((await db.query("SELECT id, name FROM users ORDER BY id")).rows);
    const lock = new pg.Client({ connectionString: db.url });
    let frozen = false;
    try {
      const lines: { level: number; msg: string }[] = [];
      const first = await startWorker(pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }));
      await waitFor("the first changes delivered", async () => ((await crm()) === (await users()) ? true : undefined), 60_000);
      // The destination held while more changes are applied; then the broker hangs, and the
      // destination takes the exports: their outcomes wait for a changelog transaction that cannot commit.
      await lock.connect();
      await lock.query("BEGIN");
      await lock.query("LOCK TABLE crm IN ACCESS EXCLUSIVE MODE");
      for (const sql of scaleWrites(1, USERS)) await db.query(sql);
      await waitFor("exports waiting", async () => ((sample((await get(first.address, "/metrics")).body, 'grouparoo_outbox_depth{destination="crm"}') ?? 0) > 0 ? true : undefined), 60_000);
      await new Promise((r) => setTimeout(r, 1000));
      broker.freeze();
      frozen = true;
      first.w.changelogStallMs = 2000;
      await lock.query("COMMIT");
      // Not ready while the changelog transaction waits for the broker (before 2026-12-03 it stayed ready).
      const down = await waitFor("the worker not ready", async () => {
        const r = await get(first.address, "/readyz");
        return r.status === 503 ? r.body : undefined;
      }, 30_000);
      expect(down).toMatch(/^not ready: kafka not acknowledging: the changelog transactions of partitions users\/[01] \(\d+ s\)(, users\/[01] \(\d+ s\))? wait for the broker\n$/);

      const started = Date.now();
      void first.w.drain("SIGTERM");
      const code = await Promise.race([first.w.finished, new Promise<string>((r) => setTimeout(() => r("still draining after 60 s"), 60_000))]);
      expect(code).toBe(0);
      // The drain (2 s) and the delivery's stop, then 10 s for the changelog and 10 s for the clients.
      expect(Date.now() - started).toBeLessThan(40_000);
      expect(lines.filter((l) => l.level === 40 && l.msg.includes("the worker stops without it")).map((l) => l.msg)).toEqual([
        "the partitions' last changelog transaction did not commit within 12 s (Kafka does not answer); the worker stops without it (the partitions' next owner restores what the changelog holds)",
        "leaving the consumer group and closing the Kafka clients did not finish within 10 s (Kafka does not answer); the worker stops without it (the partitions' next owner restores what the changelog holds)",
      ]);

      broker.thaw();
      frozen = false;
      for (const sql of scaleWrites(2, USERS)) await db.query(sql);
      const next = await startWorker();
      await waitFor("every change delivered by the next worker", async () => ((await crm()) === (await users()) && sample((await get(next.address, "/metrics")).body, 'grouparoo_outbox_depth{destination="crm"}') === 0 ? true : undefined), 120_000);
      await next.w.drain("SIGTERM");
      expect(await next.w.finished).toBe(0);
    } finally {
      if (frozen) broker.thaw();
      await lock.end().catch(() => undefined);
      await relay.drain("SIGTERM");
      await relay.finished;
    }
  });
});
