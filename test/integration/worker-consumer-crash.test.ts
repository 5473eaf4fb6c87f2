// A worker whose consumer stops on an error kafkajs does not restart from (README, "What an operator
// should know"): here the broker refusing the app's session timeout (past its
// group.max.session.timeout.ms, 30 minutes by default) when the worker joins the group. Before, the
// worker gave its partitions up and stayed up owning nothing, /readyz saying only that it was not in
// the consumer group, and no supervisor started it again; it now exits 70, naming the error.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Worker } from "../../daemon/worker.js";
import { freePort } from "../services/process.js";
import type { Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

describe("a worker whose kafka consumer stops for good", () => {
  const work = mkdtempSync(join(tmpdir(), "worker-crash-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "worker_crash");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("exits 70 naming the error", { timeout: 90_000 }, async () => {
    const names = scaleNames("workercrash");
    const objects = scaleConfig(db.url, testKafkaBrokers(), names, { partitioned: true, partitions: 2 }).map((o: Obj) =>
      o.class === "app" && o.id === "bus" ? { ...o, options: { ...(o.options as Obj), sessionTimeoutMs: 1_900_000 } } : o,
    );
    const file = join(work, "config.json");
    writeFileSync(file, JSON.stringify(objects));
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const worker = await Worker.start({ config: file, state: join(work, "worker"), http: `127.0.0.1:${await freePort()}`, maxBatchDelayMs: 2 }, logger);
    if (typeof worker === "number") throw new Error(`worker exit ${worker}`);
    const code = await Promise.race([worker.finished, new Promise<string>((r) => setTimeout(() => r("still running after 30 s"), 30_000))]);
    if (typeof code === "string") {
      await worker.drain("SIGTERM");
      await worker.finished;
    }
    const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50 && !("kafka" in l));
    expect({ code, message: errors.at(-1)?.msg }).toEqual({
      code: 70,
      message: expect.stringMatching(/^the worker's kafka consumer stopped on an error kafkajs does not retry \(The session timeout is not within the range allowed by the broker.*\); the worker stops so that its supervisor starts it again$/),
    });
  });
});
