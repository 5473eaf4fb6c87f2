// A relay told to stop (SIGTERM) while the broker does not acknowledge its events (README, "The
// relay"): kafkajs retries the produce request without end, so before 2026-12-03 the drain waited for
// it for ever and the relay never exited (systemd killed it at TimeoutStopSec). Now the drain waits
// at most 10 s for the batch in flight, then the relay stops, saying so: nothing is lost, the slot
// was not confirmed past what the broker did not acknowledge, and the next start reads it again.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Relay } from "../../daemon/relay.js";
import { startKafka, type KafkaService } from "../services/kafka.js";
import { freePort } from "../services/process.js";
import { get, waitFor } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames } from "../helpers/scale.js";
import { testPgUrl } from "../services/use.js";

describe("a relay stopped while the broker hangs", () => {
  const work = mkdtempSync(join(tmpdir(), "relay-drain-stall-"));
  let broker: KafkaService;
  let db: TestDatabase;
  beforeAll(async () => {
    broker = await startKafka();
    db = await createTestDatabase(testPgUrl(), "relay_drain_stall");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  }, 120_000);
  afterAll(async () => {
    broker?.thaw();
    await broker?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("exits within the bound, the slot not confirmed past the events the broker did not take", { timeout: 120_000 }, async () => {
    const names = scaleNames("relaydrain");
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(scaleConfig(db.url, broker.brokers, names, { partitioned: true, partitions: 2 })));
    await db.query("INSERT INTO users (id, name) VALUES (1, 'one')");
    const http = `127.0.0.1:${await freePort()}`;
    const lines: { level: number; msg: string }[] = [];
    const relay = await Relay.start({ config: file, state: join(work, "relay"), http, maxBatchDelayMs: 2 }, pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }));
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const confirmed = async () => (await db.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [names.slot])).rows[0]?.lsn;
    let frozen = false;
    try {
      await waitFor("the relay ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 60_000);
      const { rows } = await db.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
      await waitFor("the snapshot confirmed", async () => ((await db.query<{ ok: boolean }>(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`, [rows[0]?.lsn, names.slot])).rows[0]?.ok ? true : undefined), 30_000);
      const before = await confirmed();
      broker.freeze();
      frozen = true;
      await db.query("INSERT INTO users (id, name) VALUES (2, 'two')");
      // The relay has the change and waits for the broker.
      await waitFor("the relay not ready", async () => ((await get(http, "/readyz")).status === 503 ? true : undefined), 30_000);
      const started = Date.now();
      void relay.drain("SIGTERM");
      const code = await Promise.race([relay.finished, new Promise<string>((r) => setTimeout(() => r("still draining after 30 s"), 30_000))]);
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(25_000);
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toContain(
        "the batch in flight was not published within 10 s (the broker does not acknowledge it); the relay stops without it (what the slot did not confirm is read again at the next start)",
      );
      expect(await confirmed()).toBe(before);
    } finally {
      if (frozen) broker.thaw();
    }
  });
});
