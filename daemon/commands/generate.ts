// `grouparoo-stream generate`: config files from a Postgres database's tables, one or many at once.
import { describeTable, listTables, TableNotFoundError, withClient, type TableInfo } from "../../connectors/postgres/introspect.js";
import { EX_CANTCREAT, EX_NOINPUT, EX_UNAVAILABLE, EX_USAGE } from "../exit-codes.js";
import { planConfigFiles, writeConfigFiles, type ConfigObject } from "../config/generate.js";

export interface GenerateCommandOptions {
  databaseUrl: string;
  tables?: string;
  all?: boolean;
  schema: string;
  out: string;
  appId: string;
  force?: boolean;
}

/** Connection fields for the generated app: the URL's parts, its password as an environment reference. */
export function connectionOptions(url: string): ConfigObject {
  const parsed = new URL(url);
  return {
    host: parsed.hostname || "127.0.0.1",
    port: parsed.port ? Number(parsed.port) : 5432,
    user: decodeURIComponent(parsed.username || "postgres"),
    ...(parsed.password ? { password: "${DATABASE_PASSWORD}" } : {}),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, "")) || "postgres",
  };
}

export async function readTables(connectionString: string, wanted: (all: string[]) => string[]): Promise<TableInfo[]> {
  return withClient(connectionString, async (client) => {
    const names = wanted(await listTables(client));
    const tables: TableInfo[] = [];
    for (const name of names) tables.push(await describeTable(client, name));
    return tables;
  });
}

export async function writeGenerated(
  tables: TableInfo[],
  options: { appId: string; appOptions: ConfigObject; out: string; force?: boolean; columnExcludeList?: string[] },
): Promise<number> {
  const { files, warnings } = planConfigFiles(tables, options);
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
  const { written, existing } = writeConfigFiles(options.out, files, options.force === true);
  if (existing.length > 0 && written.length === 0) {
    process.stderr.write(`error: not overwriting existing ${existing.join(", ")} (use --force); nothing written\n`);
    return EX_CANTCREAT;
  }
  for (const path of written) process.stdout.write(`wrote ${path}\n`);
  return 0;
}

export async function generateCommand(options: GenerateCommandOptions): Promise<number> {
  const requested = options.tables?.split(",").map((t) => t.trim()).filter((t) => t !== "") ?? [];
  if (!options.all && requested.length === 0) {
    process.stderr.write("error: name tables with --tables a,b or use --all\n");
    return EX_USAGE;
  }
  const qualify = (t: string) => (t.includes(".") ? t : `${options.schema}.${t}`);
  let tables: TableInfo[];
  try {
    tables = await readTables(options.databaseUrl, (all) => (options.all ? all.filter((t) => t.startsWith(`${options.schema}.`)) : requested.map(qualify)));
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    // A table the database does not have is an input named wrong; anything else, the database unreachable.
    return error instanceof TableNotFoundError ? EX_NOINPUT : EX_UNAVAILABLE;
  }
  if (tables.length === 0) {
    process.stderr.write(`error: no tables in schema ${options.schema}\n`);
    return EX_NOINPUT;
  }
  return writeGenerated(tables, {
    appId: options.appId,
    appOptions: connectionOptions(options.databaseUrl),
    out: options.out,
    force: options.force,
  });
}
