// Crash safety (invariants 1 and 2): a child process applying batches is killed with SIGKILL at
// random instants; after each kill the state holds exactly the changes up to its last committed
// position (records, aggregates, memberships, counters), and the restarted child resumes there.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../../state/store.js";
import { coreDomain, dumpRecords, generateChanges, recompute, rowsAfter } from "../../helpers/core.js";

const SEED = 20261129;
const COUNT = 30_000;
const KILLS = 24;
const NOW = Date.UTC(2026, 10, 1);
const worker = new URL("../../fixtures/crash-worker.ts", import.meta.url).pathname;

function startWorker(dir: string): { child: ChildProcess; resumed: Promise<number>; progressed: Promise<void>; exited: Promise<string> } {
  const child = spawn(process.execPath, ["--import", "tsx", worker, dir, String(SEED), String(COUNT)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const resumed = new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /resume (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", () => reject(new Error(`worker exited before resuming: ${err}`)));
  });
  // Its first batch committed after resuming.
  const progressed = new Promise<void>((resolve) => child.stdout?.on("data", () => (/committed \d+/.test(out) ? resolve() : undefined)));
  const exited = new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? `exit ${code}: ${out.replace(/committed \d+\n/g, "")}${err}`)));
  return { child, resumed, progressed, exited };
}

describe("crash safety", () => {
  const dir = mkdtempSync(join(tmpdir(), "crash-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const changes = generateChanges(SEED, COUNT);
  const domain = coreDomain();

  const verify = async (): Promise<number> => {
    const store = Store.open(dir);
    try {
      const position = store.position("db");
      const applied = position === undefined ? 0 : Number(position) + 1;
      const records = dumpRecords(store);
      expect(records).toEqual(recompute(domain, rowsAfter(changes, applied), NOW));
      for (const group of domain.groups.keys()) {
        const members = [...records].filter(([, r]) => r.groups.includes(group)).map(([id]) => id).sort();
        expect(store.membersOf("users", group).sort()).toEqual(members);
        expect(store.countOf("members", group)).toBe(members.length);
      }
      expect(store.countOf("records", "users")).toBe(records.size);
      return applied;
    } finally {
      await store.close();
    }
  };

  it(`recovers exactly the committed prefix after ${KILLS} SIGKILLs`, { timeout: 300_000 }, async () => {
    const positions: number[] = [];
    let random = SEED;
    for (let kill = 0; kill < KILLS; kill += 1) {
      const { child, resumed, progressed, exited } = startWorker(dir);
      const from = await resumed;
      expect(from).toBe(positions.at(-1) ?? 0);
      // At a random instant after it committed something (mid-batch, between batches, mid-fsync).
      await progressed;
      random = (random * 1103515245 + 12345) % 2147483648;
      await new Promise((r) => setTimeout(r, 5 + (random % 120)));
      child.kill("SIGKILL");
      expect(await exited).toBe("SIGKILL");
      positions.push(await verify());
    }
    // Kills landed mid-stream, each after progress.
    expect(positions.at(-1)).toBeLessThan(COUNT);
    expect(positions.every((p, i) => i === 0 || p > (positions[i - 1] as number))).toBe(true);
    const { exited } = startWorker(dir);
    expect(await exited).toMatch(/^exit 0: resume \d+\ndone\n$/);
    expect(await verify()).toBe(COUNT);
  });
});
