// `generate` and `import-debezium` against real Postgres tables with every common column type,
// run as the compiled CLI; the generated files must pass `validate`.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPgUrl } from "../services/use.js";

const SCHEMA = `
  CREATE TABLE users (
    id            int4 PRIMARY KEY,
    small         int2,
    big           int8,
    balance       numeric(12, 2),
    ratio         real,
    score         double precision,
    vip           boolean,
    first_name    text,
    nickname      varchar(40),
    country       char(2),
    external_id   uuid,
    birthday      date,
    seen_at       timestamp,
    created_at    timestamptz,
    settings      json,
    profile       jsonb,
    email         text,
    phone         text,
    website       text,
    tags          text[],
    lucky_numbers int4[],
    ssn           text
  );
  CREATE TABLE purchases (
    id         serial PRIMARY KEY,
    user_id    int4 REFERENCES users (id),
    amount     numeric(10, 2),
    state      text,
    refunded   boolean,
    created_at timestamptz
  );
  CREATE TABLE audit_log (at timestamptz, message text);
  CREATE TABLE memberships (user_id int4, org_id int4, PRIMARY KEY (user_id, org_id));
`;

const USERS_PROPERTIES: [string, string, Record<string, unknown>?][] = [
  ["id", "integer", { unique: true }],
  ["small", "integer"],
  ["big", "integer"],
  ["balance", "float"],
  ["ratio", "float"],
  ["score", "float"],
  ["vip", "boolean"],
  ["first_name", "string"],
  ["nickname", "string"],
  ["country", "string"],
  ["external_id", "string"],
  ["birthday", "date"],
  ["seen_at", "date"],
  ["created_at", "date"],
  ["settings", "string"],
  ["profile", "string"],
  ["email", "email"],
  ["phone", "phoneNumber"],
  ["website", "url"],
  ["tags", "string", { isArray: true }],
  ["lucky_numbers", "integer", { isArray: true }],
  ["ssn", "string"],
];

const userProperty = ([column, type, extra]: (typeof USERS_PROPERTIES)[number]) => ({
  class: "property",
  id: `users_${column}`,
  type,
  ...extra,
  sourceId: "users_table",
  options: { column },
});

describe("generate and import-debezium on real Postgres", () => {
  let db: TestDatabase;
  let work: string;
  const host = () => new URL(db.url);

  beforeAll(async () => {
    db = await createTestDatabase(testPgUrl(), "generate");
    await db.query(SCHEMA);
    work = mkdtempSync(join(tmpdir(), "generate-"));
  });
  afterAll(async () => {
    rmSync(work, { recursive: true, force: true });
    await db?.drop();
  });

  const readYaml = (dir: string, name: string) => parse(readFileSync(join(dir, name), "utf8")) as Record<string, unknown>[];

  it("writes a model per keyed table and a secondary source per referencing table, typed by column", async () => {
    const out = join(work, "batch");
    const result = await runCli(["generate", "--database-url", db.url, "--tables", "users,purchases,audit_log,public.memberships", "--out", out]);
    expect(result.stderr).toBe(
      "warning: public.audit_log skipped: it has no primary key; a source needs one unique key column\n" +
        "warning: public.memberships skipped: its primary key has 2 columns; a source needs one unique key column\n",
    );
    expect(result.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["postgres.app.yml", "purchases.yml", "users.yml"]);
    expect(readYaml(out, "postgres.app.yml")).toEqual([
      { class: "app", id: "postgres", type: "postgres", options: { host: "127.0.0.1", port: Number(host().port), user: "postgres", database: db.name } },
    ]);
    expect(readYaml(out, "users.yml")).toEqual([
      { class: "model", id: "users", name: "users", type: "profile" },
      { class: "source", id: "users_table", type: "postgres-cdc", appId: "postgres", modelId: "users", options: { table: "public.users" }, mapping: { id: "users_id" } },
      ...USERS_PROPERTIES.map(userProperty),
    ]);
    expect(readYaml(out, "purchases.yml")).toEqual([
      { class: "source", id: "purchases_table", type: "postgres-cdc", appId: "postgres", modelId: "users", options: { table: "public.purchases" }, mapping: { user_id: "users_id" } },
      { class: "property", id: "purchases_count", type: "integer", sourceId: "purchases_table", options: { column: "id", aggregationMethod: "count" } },
      { class: "property", id: "purchases_amount_sum", type: "float", sourceId: "purchases_table", options: { column: "amount", aggregationMethod: "sum" } },
      { class: "property", id: "purchases_state_values", type: "string", isArray: true, sourceId: "purchases_table", options: { column: "state" } },
      { class: "property", id: "purchases_created_at_max", type: "date", sourceId: "purchases_table", options: { column: "created_at", aggregationMethod: "max" } },
    ]);
    const validate = await runCli(["validate", "--config", out]);
    expect(validate.stdout).toBe(`${out}: valid config: 1 app, 1 model, 2 sources, 26 properties\n`);
    expect(validate.code).toBe(0);
  });

  it("never overwrites an existing file without --force", async () => {
    const out = join(work, "force");
    expect((await runCli(["generate", "--database-url", db.url, "--tables", "users", "--out", out])).code).toBe(0);
    writeFileSync(join(out, "users.yml"), "# edited by hand\n");
    const again = await runCli(["generate", "--database-url", db.url, "--tables", "users", "--out", out]);
    expect(again.code).toBe(73);
    expect(again.stderr).toBe(`error: not overwriting existing ${join(out, "postgres.app.yml")}, ${join(out, "users.yml")} (use --force); nothing written\n`);
    expect(readFileSync(join(out, "users.yml"), "utf8")).toBe("# edited by hand\n");
    const forced = await runCli(["generate", "--database-url", db.url, "--tables", "users", "--out", out, "--force"]);
    expect(forced.code).toBe(0);
    expect(readYaml(out, "users.yml")[0]).toEqual({ class: "model", id: "users", name: "users", type: "profile" });
  });

  it("generates every table of a schema with --all and names a missing table", async () => {
    const out = join(work, "all");
    const all = await runCli(["generate", "--database-url", db.url, "--all", "--out", out]);
    expect(all.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["postgres.app.yml", "purchases.yml", "users.yml"]);
    const missing = await runCli(["generate", "--database-url", db.url, "--tables", "nope", "--out", join(work, "missing")]);
    // A table the database does not have is an input named wrong (66, EX_NOINPUT), not an unreachable database (69).
    expect(missing).toEqual({ code: 66, stdout: "", stderr: "error: table public.nope does not exist\n" });
  });

  const connector = () => ({
    name: "shop-connector",
    config: {
      "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
      "tasks.max": "1",
      "database.hostname": "127.0.0.1",
      "database.port": host().port,
      "database.user": "postgres",
      "database.password": "not-used-with-trust-auth",
      "database.dbname": db.name,
      "topic.prefix": "shop",
      "plugin.name": "pgoutput",
      "slot.name": "shop_slot",
      "publication.name": "shop_publication",
      "publication.autocreate.mode": "filtered",
      "snapshot.mode": "initial",
      "table.include.list": "public.users,public.purchases",
      "column.exclude.list": "public.users.ssn,public.users.settings",
      "heartbeat.interval.ms": "10000",
      "heartbeat.action.query": "INSERT INTO heartbeat (ts) VALUES (now())",
      "key.converter": "org.apache.kafka.connect.json.JsonConverter",
      "value.converter": "org.apache.kafka.connect.json.JsonConverter",
      transforms: "unwrap",
      "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
    },
  });

  it("imports a realistic Debezium connector config into a valid config", async () => {
    const file = join(work, "connector.json");
    writeFileSync(file, JSON.stringify(connector(), null, 2));
    const out = join(work, "debezium");
    const result = await runCli(["import-debezium", file, "--out", out]);
    expect(result.stderr).toBe(
      ["topic.prefix", "key.converter", "value.converter", "transforms", "transforms.unwrap.type"]
        .map((key) => `warning: ${file}: ${key}: is not supported by grouparoo-stream and is ignored\n`)
        .join(""),
    );
    expect(result.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["purchases.yml", "shop-connector.app.yml", "users.yml"]);
    expect(readYaml(out, "shop-connector.app.yml")).toEqual([
      {
        class: "app",
        id: "shop-connector",
        type: "postgres",
        options: {
          debezium: {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": host().port,
            "database.user": "postgres",
            "database.password": "${DATABASE_PASSWORD}",
            "database.dbname": db.name,
            "slot.name": "shop_slot",
            "publication.name": "shop_publication",
            "publication.autocreate.mode": "filtered",
            "plugin.name": "pgoutput",
            "snapshot.mode": "initial",
            "table.include.list": "public.users,public.purchases",
            "column.exclude.list": "public.users.ssn,public.users.settings",
            "heartbeat.interval.ms": "10000",
            "heartbeat.action.query": "INSERT INTO heartbeat (ts) VALUES (now())",
          },
        },
      },
    ]);
    const users = readYaml(out, "users.yml");
    expect(users.filter((o) => o.class === "property").map((o) => o.id)).toEqual(
      USERS_PROPERTIES.filter(([c]) => c !== "ssn" && c !== "settings").map(([c]) => `users_${c}`),
    );
    expect(users[1]).toMatchObject({ appId: "shop-connector", mapping: { id: "users_id" } });

    const missingSecret = await runCli(["validate", "--config", out], { env: { ...process.env, DATABASE_PASSWORD: undefined } });
    expect(missingSecret.code).toBe(78);
    expect(missingSecret.stderr).toContain(
      `error: ${join(out, "shop-connector.app.yml")}: app "shop-connector": options.debezium["database.password"]: environment variable DATABASE_PASSWORD is not set`,
    );
    const valid = await runCli(["validate", "--config", out], { env: { ...process.env, DATABASE_PASSWORD: "s3cret" } });
    expect(valid.stdout).toBe(`${out}: valid config: 1 app, 1 model, 2 sources, 24 properties\n`);
    expect(valid.code).toBe(0);
  });

  it("refuses a connector config it cannot honour, naming the key", async () => {
    const bad = connector();
    bad.config["plugin.name"] = "decoderbufs";
    const file = join(work, "decoderbufs.json");
    writeFileSync(file, JSON.stringify(bad.config));
    const result = await runCli(["import-debezium", file, "--out", join(work, "bad")]);
    expect(result.code).toBe(78);
    expect(result.stderr.split("\n")).toContain(`error: ${file}: plugin.name: decoderbufs cannot be decoded; grouparoo-stream supports only pgoutput`);
  });
});
