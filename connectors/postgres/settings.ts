// A postgres app's effective settings: its own options merged with an `options.debezium` connector
// config (validated beforehand), with grouparoo-stream's defaults for the rest.
import type pg from "pg";
import type { AppConfig } from "../../core/config/schema.js";
import type { PostgresAppOptions } from "./app.js";
import { readDebezium, type PublicationAutocreateMode, type SnapshotMode } from "./debezium.js";

export interface PostgresAppSettings {
  connection: pg.ClientConfig;
  slot: string;
  publication: string;
  publicationAutocreateMode: PublicationAutocreateMode;
  snapshot: SnapshotMode;
  heartbeatIntervalMs: number;
  heartbeatActionQuery?: string;
  columnExcludeList?: string[];
}

const pgName = (s: string) => s.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 63);

export function resolvePostgresApp(app: AppConfig): PostgresAppSettings {
  if (app.type !== "postgres") throw new Error(`app "${app.id}" is a ${app.type} app, not a postgres app`);
  const appId = app.id;
  const options = app.options as PostgresAppOptions;
  const debezium = options.debezium ? readDebezium(options.debezium).settings : undefined;
  const connection: pg.ClientConfig = options.connectionString
    ? { connectionString: options.connectionString }
    : {
        host: options.host ?? debezium?.host ?? "127.0.0.1",
        port: options.port ?? debezium?.port ?? 5432,
        user: options.user ?? debezium?.user,
        password: options.password ?? debezium?.password,
        database: options.database ?? debezium?.database,
      };
  if ((options.ssl ?? debezium?.ssl) === true) connection.ssl = true;
  return {
    connection,
    slot: options.slot ?? debezium?.slot ?? pgName(`grouparoo_${appId}`),
    publication: options.publication ?? debezium?.publication ?? pgName(`grouparoo_${appId}`),
    publicationAutocreateMode: debezium?.publicationAutocreateMode ?? "filtered",
    snapshot: options.snapshot ?? debezium?.snapshot ?? "initial",
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? debezium?.heartbeatIntervalMs ?? 0,
    ...(debezium?.heartbeatActionQuery ? { heartbeatActionQuery: debezium.heartbeatActionQuery } : {}),
    ...(debezium?.columnExcludeList ? { columnExcludeList: debezium.columnExcludeList } : {}),
  };
}

/** LSNs compare as 64-bit numbers ("16/B374D848"), never as strings. */
/**
 * The server and database an app reaches, as its config names them (the app's identity: a
 * destination on it is sent everything again when it changes); not the user, password or TLS.
 */
export function postgresAppIdentity(app: AppConfig): { host: string | null; port: number; database: string | null } | { connectionString: string } {
  const { connection } = resolvePostgresApp(app);
  if (connection.connectionString === undefined) return { host: connection.host ?? null, port: Number(connection.port ?? 5432), database: connection.database ?? null };
  try {
    const url = new URL(connection.connectionString);
    return {
      host: url.searchParams.get("host") ?? (decodeURIComponent(url.hostname) || null),
      port: Number(url.port || url.searchParams.get("port") || 5432),
      database: decodeURIComponent(url.pathname.slice(1)) || url.searchParams.get("dbname") || null,
    };
  } catch {
    // Not a URI (a socket: string, say): the string itself, without a password in it.
    return { connectionString: connection.connectionString.replace(/password=\S*/gi, "password=") };
  }
}

export function lsnToBigInt(lsn: string): bigint {
  const [high, low] = lsn.split("/");
  return (BigInt(`0x${high ?? "0"}`) << 32n) | BigInt(`0x${low ?? "0"}`);
}

export function compareLsn(a: string, b: string): number {
  const x = lsnToBigInt(a);
  const y = lsnToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** An LSN in Postgres's own format: uppercase hex, no zero padding ("0/291EDD8", never "00000000/0291EDD8"). */
export function normalizeLsn(lsn: string): string {
  const m = LSN_RE.exec(lsn);
  return m === null ? lsn : `${withoutLeadingZeros(m[1] as string)}/${withoutLeadingZeros(m[2] as string)}`.toUpperCase();
}
const LSN_RE = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/;
function withoutLeadingZeros(hex: string): string {
  let i = 0;
  while (i < hex.length - 1 && hex.charCodeAt(i) === 48) i += 1;
  return i === 0 ? hex : hex.slice(i);
}

/** lsn - 1: pg-logical-replication reports the LSN it is given plus one. */
export function previousLsn(lsn: string): string {
  const n = lsnToBigInt(lsn);
  const m = n > 0n ? n - 1n : 0n;
  return `${(m >> 32n).toString(16).toUpperCase()}/${(m & 0xffffffffn).toString(16).toUpperCase()}`;
}
