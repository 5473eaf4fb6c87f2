// The issue's scale-out check, with processes on the real broker (README, "Relay and workers"): a
// relay and three workers on a 6-partition topic take 100,000 changes while workers are SIGKILLed,
// stopped and started (at least 6 rebalances); the destination table ends equal to what one daemon
// produces from the same data, and no change is planned into exports by two workers (an export with the
// same partition sequence number is the same export, sent again only after its sender died).
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, startMode, withExportFile, type ModeProcess } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const CHANGES = Number(process.env.SCALE_E2E_CHANGES ?? 100_000);
/** What a worker logs when it gives a partition up by stopping (daemon/worker.ts, streams/partition-task.ts). */
const GIVE_UP = ['"msg":"taking the partition over failed; the worker stops so it can start over"', `"msg":"the partition's changelog or pipeline failed; giving the partition up"`];
const USERS = 2000;

describe("relay and three workers under SIGKILL and rebalances", () => {
  const work = mkdtempSync(join(tmpdir(), "scale-e2e-"));
  // SCALE_E2E_KEEP=1 keeps the work directory (states, exports, process logs) for a look after a failure.
  afterAll(() => (process.env.SCALE_E2E_KEEP ? console.log(`[scale-out e2e] kept ${work}`) : rmSync(work, { recursive: true, force: true })));

  it(`end where one daemon ends after ${CHANGES} changes`, { timeout: 600_000 }, async () => {
    const began = performance.now();
    const brokers = testKafkaBrokers();
    const db = await createTestDatabase(testPgUrl(), "scale_e2e");
    const running: ModeProcess[] = [];
    // The writer stops (and its last query is awaited) before the database goes, whatever failed.
    let writing = true;
    let writer: Promise<void> | undefined;
    try {
      for (const sql of SCALE_SCHEMA) await db.query(sql);
      await db.query(`INSERT INTO users SELECT g, 'u' || g || '@example.com', 'name' || g, g % 3 = 0, now() - (g % 4) * interval '1 day' + interval '25 seconds', ARRAY['a'] FROM generate_series(1, ${USERS}) g`);
      // Their relative-date memberships flip 25 s after this insert, while the workers run: a user
      // with seen_at 25 s ahead enters "Recent" then, one 2 days minus 25 s ago leaves it.
      const { rows: flipRows } = await db.query<{ at: number }>(`SELECT (extract(epoch FROM max(seen_at)) * 1000)::float8 AS at FROM users`);
      const flipAt = Number(flipRows[0]?.at);
      const names = scaleNames("e2e");
      const config = join(work, "config.json");
      writeFileSync(config, JSON.stringify(withExportFile(scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 6 }))));
      const oracleConfig = join(work, "oracle.json");
      writeFileSync(oracleConfig, JSON.stringify(withExportFile(scaleConfig(db.url, brokers, names, { partitioned: false, table: "crm_oracle", slot: `${names.slot}_oracle` }))));

      const relay = startMode("relay", ["--config", config, "--state", join(work, "relay")], `127.0.0.1:${await freePort()}`, { ...process.env, EXPORT_DIR: join(work, "unused") });
      running.push(relay);
      const incarnations: { dir: string }[] = [];
      const workers: (ModeProcess | undefined)[] = [undefined, undefined, undefined];
      // Workers the test stops; any other exit is restarted as systemd's Restart=on-failure would (a
      // worker that loses a partition it still held exits 70 by design, README "What an operator should know").
      const stopping = new Set<ModeProcess>();
      const unexpected: string[] = [];
      let finishing = false;
      const start = async (n: number): Promise<void> => {
        const dir = join(work, "exports", `w${n}-${incarnations.length}`);
        mkdirSync(dir, { recursive: true });
        incarnations.push({ dir });
        const w = startMode("worker", ["--config", config, "--state", join(work, `worker-${n}`), "--max-batch-delay-ms", "2", "--drain-timeout-ms", "3000"], `127.0.0.1:${await freePort()}`, { ...process.env, EXPORT_DIR: dir });
        workers[n] = w;
        running.push(w);
        void w.exited.then(async (exit) => {
          if (stopping.has(w) || workers[n] !== w || finishing) return;
          unexpected.push(`worker ${n} exited ${String(exit.code ?? exit.signal)}: ${w.logs().split("\n").filter((l) => l.includes('"level":50')).slice(-2).join(" | ")}`);
          workers[n] = undefined;
          await new Promise((r) => setTimeout(r, 1000));
          if (!finishing && workers[n] === undefined) await start(n).catch(() => undefined);
        });
        await waitFor(`worker ${n} in the group`, async () => ((await get(w.http, "/healthz").catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 90_000).catch((error: Error) => {
          throw new Error(`${error.message}; its log ends:\n${w.logs().slice(-3000)}`);
        });
      };
      const stop = async (n: number, signal: "SIGKILL" | "SIGTERM") => {
        const w = workers[n];
        if (!w) return;
        stopping.add(w);
        w.child.kill(signal);
        const exit = await w.exited;
        if (signal === "SIGTERM") {
          // 0, unless the worker was already giving up a partition lost to a newer owner when the
          // signal came (the documented exit 70 of a fenced worker, README "What an operator should know").
          const logs = w.logs();
          const beforeDrain = logs.slice(0, Math.max(0, logs.indexOf('"msg":"draining"')));
          const fenced = GIVE_UP.some((m) => beforeDrain.includes(m));
          expect({ code: exit.code, fenced }, logs.slice(-3000)).toEqual(fenced && exit.code === 70 ? { code: 70, fenced } : { code: 0, fenced });
        }
        workers[n] = undefined;
      };
      await Promise.all([start(0), start(1), start(2)]);

      // The writer: transactions of inserts, updates, moves of purchases between users, deletes.
      let changes = 0;
      let step = 0;
      writer = (async () => {
        while (writing && changes < CHANGES) {
          step += 1;
          const base = step * 1000;
          const results = await db.query(`
            WITH ins AS (INSERT INTO purchases SELECT ${base} + g, 1 + (g * 37 + ${step}) % ${USERS}, (g * 13 + ${step}) % 97 + 0.5, CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'successful' END, '2026-01-01T00:00:00Z'::timestamptz + (${step} * 100 + g) * interval '1 minute' FROM generate_series(1, 100) g RETURNING 1),
                 upd AS (UPDATE purchases SET amount = amount + 1 WHERE id IN (SELECT (${step} - 1 - g % 5) * 1000 + (g * 7) % 100 + 1 FROM generate_series(1, 50) g) RETURNING 1),
                 mov AS (UPDATE purchases SET user_id = user_id % ${USERS} + 1 WHERE id IN (SELECT (${step} - 2) * 1000 + g * 5 FROM generate_series(1, 20) g) RETURNING 1),
                 del AS (DELETE FROM purchases WHERE id IN (SELECT (${step} - 3) * 1000 + g * 9 FROM generate_series(1, 10) g) RETURNING 1),
                 usr AS (UPDATE users SET name = 'n' || ${step} || '-' || id, vip = NOT vip WHERE id IN (SELECT 1 + (g * 97 + ${step} * 11) % ${USERS} FROM generate_series(1, 20) g) RETURNING 1)
            SELECT (SELECT count(*) FROM ins) + (SELECT count(*) FROM upd) + (SELECT count(*) FROM mov) + (SELECT count(*) FROM del) + (SELECT count(*) FROM usr) AS n`);
          changes += Number((results.rows[0] as { n: string }).n);
          if (step % 25 === 0) {
            await db.query(`DELETE FROM users WHERE id = ${1 + ((step * 31) % USERS)}`);
            await db.query(`INSERT INTO users VALUES (${1 + ((step * 31) % USERS)}, 'back${step}@example.com', 'back', true, now(), ARRAY['b']) ON CONFLICT DO NOTHING`);
            changes += 2;
          }
          await new Promise((r) => setTimeout(r, 15));
        }
      })();

      // Rebalances while the writer writes and the workers catch up: kills, graceful stops, starts.
      let rebalances = 0;
      const pause = () => new Promise((r) => setTimeout(r, 2500));
      const chaos: [string, () => Promise<void>][] = [
        ["SIGKILL worker 0", () => stop(0, "SIGKILL")],
        ["start worker 0", () => start(0)],
        ["SIGTERM worker 1", () => stop(1, "SIGTERM")],
        ["start worker 1", () => start(1)],
        ["SIGKILL worker 2", () => stop(2, "SIGKILL")],
        ["start worker 2", () => start(2)],
        ["SIGKILL workers 0 and 1", async () => void (await Promise.all([stop(0, "SIGKILL"), stop(1, "SIGKILL")]))],
        ["start workers 0 and 1", async () => void (await Promise.all([start(0), start(1)]))],
      ];
      for (const [, action] of chaos) {
        await pause();
        await action();
        rebalances += 1;
      }
      await writer;
      const written = performance.now();

      // Everything published is committed by the group, every outbox is empty, and the table settles.
      const kafka = new Kafka({ clientId: "scale-e2e", brokers, logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      const { rows: lsn } = await db.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
      await waitFor("the relay confirmed the slot past the writes", async () => {
        const { rows } = await db.query<{ ok: boolean }>(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`, [lsn[0]?.lsn, names.slot]);
        return rows[0]?.ok ? true : undefined;
      }, 180_000);
      await waitFor("the group committed every offset", async () => {
        const ends = await admin.fetchTopicOffsets(names.topic);
        const [offsets] = await admin.fetchOffsets({ groupId: names.groupId, topics: [names.topic] });
        return ends.every((end) => offsets?.partitions.find((p) => p.partition === end.partition)?.offset === end.high) ? true : undefined;
      }, 240_000);
      // A run fast enough to catch up before that instant compares only once the workers' sweep
      // applied it (their timers fire at it; nothing else is written any more) and its exports left.
      const untilFlipped = flipAt + 2000 - Date.now();
      if (untilFlipped > 0) await new Promise((r) => setTimeout(r, untilFlipped));
      await waitFor("every outbox delivered", async () => {
        let depth = 0;
        for (const w of workers.filter((p): p is ModeProcess => p !== undefined)) {
          const text = (await get(w.http, "/metrics")).body;
          depth += (sample(text, 'grouparoo_outbox_depth{destination="crm"}') ?? 0) + (sample(text, 'grouparoo_outbox_depth{destination="ledger"}') ?? 0);
        }
        return depth === 0 ? true : undefined;
      }, 120_000);
      const caughtUp = performance.now();
      finishing = true;

      const table = async (name: string) => JSON.stringify((await db.query(`SELECT id, email, name, ltv, purchases, last_purchase, segments FROM ${name} ORDER BY id`)).rows);
      const oracle = startMode("run", ["--config", oracleConfig, "--state", join(work, "oracle")], `127.0.0.1:${await freePort()}`, { ...process.env, EXPORT_DIR: join(work, "oracle-exports") });
      running.push(oracle);
      // Settled: its snapshot read (the log line counts its rows), every row of it applied, and its
      // outboxes empty. Nothing is written to the tables any more, so nothing follows the snapshot.
      const expected = await waitFor("the oracle applied its snapshot and delivered it", async () => {
        const read = oracle.logs().split("\n").find((line) => line.includes('"initial snapshot read"'));
        if (!read) return undefined;
        const rows = (JSON.parse(read) as { rows: number }).rows;
        const text = (await get(oracle.http, "/metrics")).body;
        const applied = [...text.matchAll(/^grouparoo_changes_applied_total\{[^}]*op="snapshot"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
        const depth = (sample(text, 'grouparoo_outbox_depth{destination="crm"}') ?? 1) + (sample(text, 'grouparoo_outbox_depth{destination="ledger"}') ?? 1);
        if (applied < rows || depth !== 0) return undefined;
        const rowsNow = await table("crm_oracle");
        return rowsNow !== "[]" ? rowsNow : undefined;
      }, 180_000);
      // Each side applies a relative-date flip on its own timer and delivers it on its own: a read
      // just after one may see one side ahead. They must come to agree (a lasting difference fails).
      let actual = await table("crm");
      let settled = expected;
      for (const deadline = Date.now() + 30_000; actual !== settled && Date.now() < deadline; ) {
        await new Promise((r) => setTimeout(r, 500));
        [actual, settled] = [await table("crm"), await table("crm_oracle")];
      }
      if (actual !== settled) expect(JSON.parse(actual)).toEqual(JSON.parse(settled));
      expect((JSON.parse(settled) as unknown[]).length).toBeGreaterThan(USERS - 30);

      // No change planned into exports twice: one content per (record, sequence number).
      const byExport = new Map<string, { contents: Set<string>; senders: Set<number> }>();
      let lines = 0;
      for (const [i, incarnation] of incarnations.entries()) {
        const file = join(incarnation.dir, "exports.jsonl");
        const names = readdirSync(incarnation.dir);
        if (!names.includes("exports.jsonl")) continue;
        for (const line of readFileSync(file, "utf8").split("\n")) {
          if (line === "") continue;
          lines += 1;
          const e = JSON.parse(line) as { seq: number; recordId: string; newRecordProperties: unknown; newGroups: unknown; toDelete: boolean };
          const id = `${e.recordId}#${e.seq}`;
          const entry = byExport.get(id) ?? { contents: new Set(), senders: new Set() };
          entry.contents.add(JSON.stringify([e.newRecordProperties, e.newGroups, e.toDelete]));
          entry.senders.add(i);
          byExport.set(id, entry);
        }
      }
      const planned = [...byExport].filter(([, e]) => e.contents.size > 1);
      expect(planned.map(([id]) => id)).toEqual([]);
      // The same export (same content) sent again by the partition's next owner: it was in flight
      // (sent, its acknowledgement not yet in the changelog) when its sender died or lost the partition.
      // At most one delivery batch in flight per destination, partition and concurrency slot each time.
      const resent = [...byExport].filter(([, e]) => e.senders.size > 1);
      expect(resent.length).toBeLessThanOrEqual(rebalances * 6 * 2 * 100);
      console.log(
        `[scale-out e2e] ${changes} changes, ${rebalances} membership changes, ${incarnations.length} worker processes; writes ${((written - began) / 1000).toFixed(1)} s, caught up ${((caughtUp - began) / 1000).toFixed(1)} s, total ${((performance.now() - began) / 1000).toFixed(1)} s; ${lines} ledger lines, ${byExport.size} exports, ${resent.length} re-sent by the next owner of their partition (in flight when their sender was killed or lost it); ${unexpected.length} exits restarted as a supervisor would${unexpected.length > 0 ? `: ${unexpected.join("; ")}` : ""}`,
      );
      expect(changes).toBeGreaterThanOrEqual(CHANGES);
      expect(rebalances).toBeGreaterThanOrEqual(6);
      await admin.disconnect();
    } finally {
      writing = false;
      await writer?.catch(() => undefined);
      if (process.env.SCALE_E2E_KEEP) for (const [i, p] of running.entries()) writeFileSync(join(work, `process-${i}.log`), p.logs());
      for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
      await Promise.all(running.map((p) => Promise.race([p.exited, new Promise((r) => setTimeout(r, 15_000))])));
      for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
      if (!process.env.SCALE_E2E_KEEP) await db.drop();
    }
  });
});
