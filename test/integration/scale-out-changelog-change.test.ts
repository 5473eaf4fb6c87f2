// A worker started with the model's changelogTopic changed and its consumer group kept (README, "The
// workers"): the group's offsets name the changelog the partitions' states went to, the new one holds
// none of it, so the worker refuses with 78, naming both topics, instead of writing only what comes
// next to the new changelog (a later restore from it, on another machine or after a lost disk, gave a
// partition missing every record that did not change meanwhile, without a word). Back on the
// changelog that holds the states, it starts and keeps them.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Relay } from "../../daemon/relay.js";
import { Worker } from "../../daemon/worker.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import type { Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const USERS = 30;

function withChangelog(objects: Obj[], changelogTopic: string): Obj[] {
  return objects.map((o) => (o.class === "model" ? { ...o, partitioned: { ...(o.partitioned as Obj), changelogTopic } } : o));
}

describe("a worker whose changelog topic changed", () => {
  const work = mkdtempSync(join(tmpdir(), "scale-changelog-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "scale_changelog");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("is refused with 78 naming both changelogs, and starts again on the one holding the states", { timeout: 180_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("scalecl");
    const base = scaleConfig(db.url, brokers, names, { partitioned: true, partitions: 2 });
    const firstFile = join(work, "first.json");
    const movedFile = join(work, "moved.json");
    writeFileSync(firstFile, JSON.stringify(withChangelog(base, `${names.topic}.changelog`)));
    writeFileSync(movedFile, JSON.stringify(withChangelog(base, `${names.topic}.changelog-moved`)));
    for (const sql of scaleWrites(0, USERS)) await db.query(sql);
    const users = Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);

    const http = async () => `127.0.0.1:${await freePort()}`;
    const relay = await Relay.start({ config: firstFile, state: join(work, "relay"), http: await http(), maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const state = join(work, "worker");
    const startWorker = async (config: string, dir: string, logger = quiet) => {
      const address = await http();
      const w = await Worker.start({ config, state: dir, http: address, maxBatchDelayMs: 2, drainTimeoutMs: 2000 }, logger);
      if (typeof w === "number") throw new Error(`worker exit ${w}`);
      return { w, address };
    };
    let seen = "";
    const caughtUp = (address: string) =>
      waitFor("the worker caught up", async () => {
        const text = (await get(address, "/metrics")).body;
        seen = text.split("\n").filter((l) => l.startsWith("grouparoo_kafka_consumer_lag{") || l.startsWith("grouparoo_records") || l.startsWith("grouparoo_partitions_owned")).join("\n");
        const lags = text.split("\n").filter((l) => l.startsWith("grouparoo_kafka_consumer_lag{"));
        return sample(text, 'grouparoo_records{model="users"}') === users && lags.length === 2 && lags.every((l) => l.endsWith(" 0")) ? true : undefined;
      }, 90_000).catch((error: Error) => {
        throw new Error(`${error.message}: ${seen}`);
      });
    const refusal = async (dir: string) => {
      const lines: string[] = [];
      const { w } = await startWorker(movedFile, dir, pino({ level: "info" }, { write: (line: string) => void lines.push(line) }));
      const code = await Promise.race([w.finished, new Promise<string>((r) => setTimeout(() => r("still running after 30 s"), 30_000))]);
      if (typeof code === "string") {
        await w.drain("SIGTERM");
        await w.finished;
      }
      const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50);
      return { code, first: errors[0]?.msg };
    };
    try {
      const first = await startWorker(firstFile, state);
      await caughtUp(first.address);
      await first.w.drain("SIGTERM");
      expect(await first.w.finished).toBe(0);

      const expected = new RegExp(
        `^partition users/\\d's state is in changelog ${names.topic}\\.changelog \\(the consumer group's committed offsets name it\\), and the config names changelog ${names.topic}\\.changelog-moved, which does not hold it: set the model's partitioned\\.changelogTopic back to ${names.topic}\\.changelog, or apply the change as a new deployment \\(.*\\); not starting$`,
      );
      // With the partitions' local states, and on a machine that has none.
      expect(await refusal(state)).toEqual({ code: 78, first: expect.stringMatching(expected) });
      expect(await refusal(join(work, "elsewhere"))).toEqual({ code: 78, first: expect.stringMatching(expected) });

      // Back on the changelog that holds the states: kept, and the stream goes on.
      const again = await startWorker(firstFile, state);
      const text = await waitFor("the worker took its partitions over", async () => {
        const metrics = (await get(again.address, "/metrics")).body;
        return (await get(again.address, "/readyz")).status === 200 && sample(metrics, 'grouparoo_restore_seconds_count{model="users",how="kept"}') === 2 ? metrics : undefined;
      }, 60_000);
      expect(sample(text, 'grouparoo_records{model="users"}')).toBe(users);
      expect(sample(text, 'grouparoo_restore_seconds_count{model="users",how="restored"}') ?? 0).toBe(0);
      // The stream goes on.
      for (const sql of scaleWrites(1, USERS)) await db.query(sql);
      const now = Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);
      await waitFor("the next writes applied", async () => (sample((await get(again.address, "/metrics")).body, 'grouparoo_records{model="users"}') === now ? true : undefined), 60_000);
      await again.w.drain("SIGTERM");
      expect(await again.w.finished).toBe(0);
    } finally {
      await relay.drain("SIGTERM");
      await relay.finished;
    }
  });
});
