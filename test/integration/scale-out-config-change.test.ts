// A config change met by a worker (README, "Relay and workers"), against real Postgres and Kafka, in
// process: a worker restarted on its own partition states with a changed config (a group removed, one
// added, an aggregate's filter dropped, a destination's group memberships changed) brings each
// partition's state to it with that partition's own Runs, and its destination table ends where one
// daemon started fresh on the new config ends; a change only a re-read follows (a new property of the
// primary source) is refused with exit 78, the partitions' states left as they were.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Daemon } from "../../daemon/daemon.js";
import { Relay } from "../../daemon/relay.js";
import { Worker } from "../../daemon/worker.js";
import { Store } from "../../state/store.js";
import { storedDefinitions } from "../../streams/runs.js";
import { freePort } from "../services/process.js";
import { get, sample, waitFor } from "../helpers/daemon.js";
import type { Obj } from "../helpers/converge.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { SCALE_SCHEMA, scaleConfig, scaleNames, scaleWrites } from "../helpers/scale.js";
import { testKafkaBrokers, testPgUrl } from "../services/use.js";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const USERS = 40;

/** The scale config changed in ways Runs over the stored state follow. */
function changed(objects: Obj[]): Obj[] {
  return [
    ...objects
      .filter((o) => !(o.class === "group" && o.id === "vips"))
      .map((o) => {
        if (o.class === "property" && o.id === "lifetime_value") {
          const { filters: _dropped, ...rest } = o;
          return rest;
        }
        if (o.class === "destination") return { ...o, destinationGroupMemberships: { "High Value": "high_value", "Big Buyers": "big_buyers", Recent: "recent" } };
        return o;
      }),
    { class: "group", id: "big_buyers", modelId: "users", rules: [{ propertyId: "purchase_count", op: "gte", match: 3 }] },
  ];
}

/** The sum of every sample of a metric whose series starts with `prefix`. */
function total(metrics: string, prefix: string): number {
  let sum = 0;
  for (const line of metrics.split("\n")) if (line.startsWith(prefix)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

describe("a worker on a changed config", () => {
  const work = mkdtempSync(join(tmpdir(), "scale-config-"));
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "scale_config");
    for (const sql of SCALE_SCHEMA) await db.query(sql);
  });
  afterAll(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  const table = async (name: string) => (await db.query(`SELECT id, email, name, ltv, purchases, last_purchase, segments FROM ${name} ORDER BY id`)).rows;

  it("runs the Runs the change needs on each partition and ends where a fresh daemon ends; a change that needs a re-read exits 78", { timeout: 240_000 }, async () => {
    const brokers = testKafkaBrokers();
    const names = scaleNames("scalecfg");
    const before = scaleConfig(db.url, brokers, names, { partitioned: true });
    const after = changed(before);
    const beforeFile = join(work, "before.json");
    const afterFile = join(work, "after.json");
    writeFileSync(beforeFile, JSON.stringify(before));
    writeFileSync(afterFile, JSON.stringify(after));
    const oracleFile = join(work, "oracle.json");
    writeFileSync(oracleFile, JSON.stringify(changed(scaleConfig(db.url, brokers, names, { partitioned: false, table: "crm_oracle", slot: `${names.slot}_oracle` }))));
    for (let round = 0; round <= 2; round += 1) for (const sql of scaleWrites(round, USERS)) await db.query(sql);

    const http = async () => `127.0.0.1:${await freePort()}`;
    const relay = await Relay.start({ config: beforeFile, state: join(work, "relay"), http: await http(), maxBatchDelayMs: 2 }, quiet);
    if (typeof relay === "number") throw new Error(`relay exit ${relay}`);
    const state = join(work, "worker");
    const startWorker = async (config: string, logger = quiet) => {
      const address = await http();
      const w = await Worker.start({ config, state, http: address, maxBatchDelayMs: 2, drainTimeoutMs: 2000 }, logger);
      if (typeof w === "number") throw new Error(`worker exit ${w}`);
      return { w, address };
    };
    try {
      // Everything applied under the first config: every user a record, nothing left to read.
      const first = await startWorker(beforeFile);
      const users = Number((await db.query("SELECT count(*) AS n FROM users")).rows[0]?.n);
      await waitFor("the first worker caught up", async () => {
        const text = (await get(first.address, "/metrics")).body;
        return sample(text, 'grouparoo_records{model="users"}') === users && total(text, "grouparoo_kafka_consumer_lag{") === 0 && (await table("crm")).length > 0 ? true : undefined;
      }, 90_000);
      await first.w.drain("SIGTERM");
      expect(await first.w.finished).toBe(0);

      // The changed config, on the same partition states; the stream goes on meanwhile.
      const second = await startWorker(afterFile);
      for (const sql of scaleWrites(3, USERS)) await db.query(sql);
      const runs = await waitFor("the Runs done on every partition", async () => {
        const text = (await get(second.address, "/metrics")).body;
        const owned = sample(text, 'grouparoo_partitions_owned{model="users"}') ?? 0;
        return owned === 6 && total(text, "grouparoo_run_progress_ratio{") === 0 && total(text, 'grouparoo_runs{kind="export",state="complete"}') === 6 ? text : undefined;
      }, 90_000);
      // Each partition planned the same four Runs and carried them out.
      for (const kind of ["remove-group", "rebuild", "backfill", "export"]) expect(total(runs, `grouparoo_runs{kind="${kind}",state="complete"}`), kind).toBe(6);
      expect(total(runs, 'grouparoo_runs{kind="reread"')).toBe(0);
      expect(runs).not.toMatch(/grouparoo_runs\{kind="[^"]+",state="(failed|queued|running)"\} [1-9]/);

      // The oracle: one daemon started fresh on the changed config over the same data.
      const oracle = await Daemon.start({ config: oracleFile, state: join(work, "oracle"), http: await http(), maxBatchDelayMs: 2 }, quiet);
      if (typeof oracle === "number") throw new Error(`oracle exit ${oracle}`);
      try {
        const expected = await waitFor("the oracle applied its snapshot and delivered it", async () => {
          if (oracle.state.position("postgres:shop:snapshot")?.startsWith("complete:") !== true) return undefined;
          if ((oracle.runs?.pending().length ?? 1) > 0 || oracle.state.outboxDepth("crm") > 0) return undefined;
          const rows = JSON.stringify(await table("crm_oracle"));
          return rows !== "[]" ? rows : undefined;
        }, 60_000);
        await waitFor("the worker's table equals the oracle's", async () => (JSON.stringify(await table("crm")) === expected ? true : undefined), 90_000).catch(async (error: Error) => {
          expect(await table("crm")).toEqual(JSON.parse(expected));
          throw error;
        });
        const rows = JSON.parse(expected) as { segments: string[] | null }[];
        expect(rows.length).toBeGreaterThan(20);
        // The change is visible: the new group's members are there, the removed group's are not.
        expect(rows.some((r) => r.segments?.includes("Big Buyers"))).toBe(true);
        expect(rows.some((r) => r.segments?.includes("VIP"))).toBe(false);
      } finally {
        await oracle.drain("SIGTERM");
        await oracle.finished;
      }
      await second.w.drain("SIGTERM");
      expect(await second.w.finished).toBe(0);

      // A new property of the primary source: its values for existing records come only from reading
      // the table again, which a worker cannot do. Refused, named, and nothing changed.
      const readDefinitions = async () => {
        const store = Store.open(join(state, "users", "0"), { readOnly: true });
        try {
          return storedDefinitions(store);
        } finally {
          await store.close();
        }
      };
      const kept = await readDefinitions();
      expect(Object.keys(kept?.groups ?? {}).sort()).toEqual(["big_buyers", "high_value", "recent"]);
      const rereadFile = join(work, "reread.json");
      writeFileSync(rereadFile, JSON.stringify([...after, { class: "property", id: "seen_day", type: "date", sourceId: "users_table", options: { column: "seen_at" } }]));
      const lines: string[] = [];
      const refused = await startWorker(rereadFile, pino({ level: "info" }, { write: (line: string) => void lines.push(line) }));
      expect(await refused.w.finished).toBe(78);
      const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]?.msg).toMatch(
        /^the config changes partition users\/\d's state in a way a worker cannot follow: source users_table: property seen_day is new or changed: the source's rows are read again\. A worker gets a source's rows only through the relay, once, and cannot read them again: apply this change by starting the relay on a new slot and publication and the workers on a new consumer group and changelog, with empty --state directories, or undo it \(the partition's state was not changed\); not starting$/,
      );
      expect(await readDefinitions()).toEqual(kept);
    } finally {
      await relay.drain("SIGTERM");
      await relay.finished;
    }
  });
});
