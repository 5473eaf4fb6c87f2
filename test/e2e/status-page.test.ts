// The status page at /, loaded in headless Chromium (Debian's chromium, driven by playwright-core)
// against a running daemon on real Postgres: the browser presents the key by HTTP Basic, and the
// rendered DOM shows the source with its state, the destination with its outbox, the groups with their
// sizes and the Runs with progress bars; without a key the browser gets 401. A screenshot is saved
// under test/.output/status-page/.
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "../helpers/api.js";
import { startDaemon, waitFor, type DaemonProcess } from "../helpers/daemon.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { freePort } from "../services/process.js";
import { testPgUrl } from "../services/use.js";

const KEY = "page-3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f";
const CHROMIUM = process.env.CHROMIUM_PATH ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const OUTPUT = new URL("../.output/status-page/", import.meta.url).pathname;

describe("the status page in headless Chromium", () => {
  let db: TestDatabase;
  let work: string;
  let daemon: DaemonProcess;
  let browser: Browser;
  let http: string;

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error("chromium is not installed: apt-get install chromium (.ci/run does), or set CHROMIUM_PATH to a Chromium binary");
    db = await createTestDatabase(testPgUrl(), "page");
    await db.query(`CREATE TABLE users (id int PRIMARY KEY, email text, vip boolean)`);
    await db.query(`INSERT INTO users SELECT i, 'user' || i || '@example.com', i % 4 = 0 FROM generate_series(1, 400) i`);
    work = mkdtempSync(join(tmpdir(), "page-"));
    const config = join(work, "config.yml");
    writeFileSync(
      config,
      `
- { class: app, id: shop, type: postgres, options: { connectionString: "${db.url}", slot: page_slot, publication: page_pub } }
- { class: app, id: files, type: file, options: { directory: "${work}/out" } }
- { class: model, id: users }
- { class: source, id: users_table, type: postgres-cdc, appId: shop, modelId: users, options: { table: users }, mapping: { id: user_id } }
- { class: property, id: user_id, type: integer, unique: true, sourceId: users_table, options: { column: id } }
- { class: property, id: email, type: email, sourceId: users_table, options: { column: email } }
- { class: property, id: vip, type: boolean, sourceId: users_table, options: { column: vip } }
- { class: group, id: vips, modelId: users, rules: [{ propertyId: vip, op: eq, match: "true" }] }
- { class: destination, id: vip_file, type: jsonl-file, appId: files, modelId: users, collection: group, groupId: vips, syncMode: sync, options: { path: vips.jsonl }, mapping: { id: user_id, email: email } }
- { class: apiKey, id: page, type: specific, apiKey: "\${PAGE_KEY}", permissions: [{ topic: status, read: true, write: false }, { topic: run, read: true, write: true }] }
`,
    );
    http = `127.0.0.1:${await freePort()}`;
    daemon = startDaemon(["--config", config, "--state", join(work, "state")], http, { ...process.env, PAGE_KEY: KEY });
    const api = new ApiClient(http);
    await waitFor("ready with 400 records delivered", async () => {
      const status = await api.get<{ ready: boolean; records: { count: number }[]; destinations: { outboxDepth: number }[] }>("/api/v1/status", KEY);
      return status.body.ready && status.body.records[0]?.count === 400 && status.body.destinations[0]?.outboxDepth === 0 ? true : undefined;
    }, 60_000);
    // A finished Run, for a progress bar at 100 %.
    const run = await api.call<{ runs: { id: string }[] }>("POST", "/api/v1/runs", { key: KEY, body: { group: "vips" } });
    await waitFor("the backfill complete", async () => ((await api.get<{ run: { state: string } }>(`/api/v1/runs/${run.body.runs[0]?.id ?? ""}`, KEY)).body.run.state === "complete" ? true : undefined));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      daemon.child.kill("SIGTERM");
      await daemon.exited;
    }
    await db?.drop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("renders sources, destinations, groups and Runs with progress for a browser presenting the key", { timeout: 60_000 }, async () => {
    const context = await browser.newContext({ httpCredentials: { username: "operator", password: KEY }, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const requests: string[] = [];
    page.on("request", (request) => requests.push(request.url()));
    const response = await page.goto(`http://${http}/`);
    expect(response?.status()).toBe(200);
    expect(await page.title()).toBe("grouparoo-stream: ready");
    expect(await page.textContent("#readiness")).toBe("ready");
    const cells = (selector: string) => page.$$eval(`${selector} tbody tr`, (rows) => rows.map((row) => [...row.querySelectorAll("td")].map((td) => (td.firstChild?.textContent ?? "").trim())));
    const sources = await cells("#sources");
    expect(sources.map((row) => row.slice(0, 5))).toEqual([["shop", "postgres", "users_table", "streaming", "no"]]);
    const destinations = await cells("#destinations");
    expect(destinations.map((row) => [row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[8]])).toEqual([["vip_file", "jsonl-file", "users", "yes", "0", "–", "100", "0"]]);
    expect(await cells("#groups")).toEqual([["vips", "users", "100"]]);
    expect(await cells("#records")).toEqual([["users", "400"]]);
    const runs = await page.$$eval("#runs tbody tr", (rows) =>
      rows.map((row) => {
        const bar = row.querySelector("[role=progressbar]");
        const fill = row.querySelector(".fill");
        return { kind: row.children[1]?.textContent, target: row.children[2]?.textContent, state: row.children[3]?.textContent, value: bar?.getAttribute("aria-valuenow"), width: fill?.getAttribute("style"), label: row.querySelector(".progress span")?.textContent };
      }),
    );
    expect(runs).toEqual([{ kind: "backfill", target: "group vips", state: "complete", value: "100", width: "width:100.0%", label: "100 % (400 / 400)" }]);
    expect(await page.textContent("#dead-letters")).toBe("0 change, 0 message, 0 export");
    // Everything came from the daemon itself: no CDN, no other origin.
    expect(requests.every((url) => url.startsWith(`http://${http}/`))).toBe(true);
    mkdirSync(OUTPUT, { recursive: true });
    const shot = join(OUTPUT, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    await context.close();
  });

  it("asks a browser without a key for one (401, HTTP Basic)", async () => {
    // Headless Chromium has no prompt to show: it gives up on the challenge, after reading it.
    const context = await browser.newContext();
    const page = await context.newPage();
    const answered = page.waitForEvent("response");
    await page.goto(`http://${http}/`).catch((error: Error) => expect(error.message).toContain("ERR_INVALID_AUTH_CREDENTIALS"));
    const response = await answered;
    expect(response.status()).toBe(401);
    expect(await response.headerValue("www-authenticate")).toBe('Basic realm="grouparoo-stream", charset="UTF-8"');
    await context.close();
  });
});
