// --watch-config on a config file that is replaced rather than written in place: an editor's save, `sed
// -i` or a deploy tool writes a new file and renames it over the old one, and a Kubernetes ConfigMap
// swaps the `..data` symbolic link its files point through. Each change reloads, the second and later
// ones too (a watch on the file itself follows the replaced file's inode and saw the first only).
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../services/process.js";
import { shopConfig, SHOP_DATA, SHOP_SCHEMA, type Obj } from "../helpers/converge.js";
import { get, killIfRunning, sample, startDaemon, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const concrete = (url: string, slot: string, group?: number): Obj[] => [
  ...shopConfig()
    .filter((o) => o.class !== "destination")
    .map((o) => (o.class === "app" ? { ...o, options: { connectionString: url, slot, publication: slot } } : o)),
  ...(group === undefined ? [] : [{ class: "group", id: "big", modelId: "users", rules: [{ propertyId: "max_amount", op: "gt", match: group }] }]),
];

describe("--watch-config on a file replaced by a rename", () => {
  const work = mkdtempSync(join(tmpdir(), "watch-config-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const run = async (slot: string, layout: (db: string) => { config: string; write: (objects: Obj[]) => void }) => {
    const db = await createTestDatabase(testPgUrl(), slot);
    let daemon: DaemonProcess | undefined;
    try {
      for (const sql of [...SHOP_SCHEMA, ...SHOP_DATA]) await db.query(sql);
      const { config, write } = layout(db.url);
      write(concrete(db.url, slot));
      const http = `127.0.0.1:${await freePort()}`;
      daemon = startDaemon(["--config", config, "--state", join(work, `state-${slot}`), "--watch-config"], http);
      const metrics = async () => (await get(http, "/metrics")).body;
      await daemon.until("ready", async () => ((await get(http, "/readyz")).status === 200 ? true : undefined), 30_000);
      const size = async (over: number) => Number((await db.query<{ n: string }>(`SELECT count(DISTINCT user_id) AS n FROM purchases WHERE amount > $1`, [over])).rows[0]?.n);
      // Three changes in turn, each a new file in the old one's place: each is applied.
      for (const [n, over] of [90, 40, 10].entries()) {
        write(concrete(db.url, slot, over));
        const expected = await size(over);
        await daemon.until(`change ${n + 1} applied`, async () => {
          const text = await metrics();
          return sample(text, 'grouparoo_config_reload_total{result="applied"}') === n + 1 && sample(text, 'grouparoo_group_members{group="big"}') === expected ? true : undefined;
        });
      }
      expect(await size(10)).toBeGreaterThan(await size(90));
      daemon.child.kill("SIGTERM");
      expect((await daemon.exited).code).toBe(0);
    } finally {
      await killIfRunning(daemon);
      await db.drop();
    }
  };

  it("reloads on every save of a file written aside and renamed over the config", { timeout: 120_000 }, async () => {
    await run("watch_rename", () => {
      const dir = join(work, "rename");
      mkdirSync(dir);
      const config = join(dir, "config.json");
      return {
        config,
        write: (objects) => {
          writeFileSync(`${config}.tmp`, JSON.stringify(objects));
          renameSync(`${config}.tmp`, config);
        },
      };
    });
  });

  it("reloads on every swap of a Kubernetes ConfigMap's ..data link", { timeout: 120_000 }, async () => {
    let version = 0;
    await run("watch_configmap", () => {
      const dir = join(work, "configmap");
      mkdirSync(dir);
      const config = join(dir, "config.json");
      return {
        config,
        write: (objects) => {
          // As the kubelet does: the new files in a directory of their own, a new link to it, renamed over ..data.
          version += 1;
          const data = `..v${version}`;
          mkdirSync(join(dir, data));
          writeFileSync(join(dir, data, "config.json"), JSON.stringify(objects));
          symlinkSync(data, join(dir, "..data_tmp"));
          renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
          if (version === 1) symlinkSync(join("..data", "config.json"), config);
        },
      };
    });
  });
});
