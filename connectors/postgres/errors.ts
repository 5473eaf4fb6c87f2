// Which Postgres errors are permanent (retrying cannot help until the database or the config is fixed)
// and which are transient (the connection failed; retrying with backoff is right). Postgres names its
// errors by SQLSTATE: class 28 invalid authorization (bad password, no pg_hba entry), 3D000 no such
// database, 42P01 undefined table, 42P10 no unique index an ON CONFLICT can use, 42501 insufficient
// privilege, ...; transient ones are class 08 (connection exceptions), 57P01-57P03 (the server
// shutting down or starting), 53xxx (out of connections, memory, disk), 55006 object in use (a
// replication slot still held by a dying backend). Node's own socket errors (ECONNREFUSED,
// ECONNRESET, ETIMEDOUT, ...) are transient; a connection string that cannot be parsed (Invalid URL)
// is permanent.

/** A failure that retrying cannot fix: the connector reports it as its problem() instead of looping. */
export class PermanentError extends Error {
  readonly code = "PERMANENT";
}

export interface ErrorClass {
  permanent: boolean;
  /** The error as one line for /readyz and the log: message, with the SQLSTATE when there is one. */
  reason: string;
}

const PERMANENT_STATES: Record<string, string> = {
  "3D000": "the database does not exist",
  "3F000": "the schema does not exist",
  "42P01": "a table does not exist",
  "42P10": "no unique index matches an ON CONFLICT (e.g. a postgres-table's primaryKey column has none)",
  "42501": "permission denied",
  "42703": "a column does not exist",
  "42704": "an object does not exist",
  "42601": "syntax error",
  "42883": "a function does not exist",
  "0A000": "not supported",
  "55000": "the database is not set up for it (e.g. wal_level is not logical)",
  "22023": "invalid parameter",
};

/** The SQLSTATE of a pg error, if it has one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function classifyPostgresError(error: unknown): ErrorClass {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof PermanentError) return { permanent: true, reason: message };
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ERR_INVALID_URL" || (error instanceof TypeError && /invalid url/i.test(message))) {
    return { permanent: true, reason: `invalid connection string: ${message}` };
  }
  const state = sqlState(error);
  if (state !== undefined) {
    const permanent = state.startsWith("28") || PERMANENT_STATES[state] !== undefined;
    return { permanent, reason: `${message} (SQLSTATE ${state})` };
  }
  // Node socket errors, timeouts, "Connection terminated unexpectedly", ...: the link, not the config.
  return { permanent: false, reason: typeof code === "string" ? `${message} (${code})` : message };
}
