// Timers beside the replication stream: the replication lag in bytes (server WAL position minus the
// slot's confirmed position, every 5 s) and heartbeats (heartbeat.interval.ms), which write a logical
// message (and heartbeat.action.query, if set) so the slot advances through the core while the
// captured tables are quiet and the rest of the database is not (WAL is not retained for nothing).
import type { Logger } from "pino";
import { withClient } from "../introspect.js";
import type { PostgresAppSettings } from "../settings.js";

/** Polls the slot's lag every 5 s while `stopped()` is false; returns the timer. */
export function startLagPoller(settings: PostgresAppSettings, report: ((bytes: number) => void) | undefined, stopped: () => boolean): NodeJS.Timeout {
  const poll = () => {
    if (stopped() || !report) return;
    void withClient(settings.connection, (client) =>
      client.query<{ lag: string | null }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag FROM pg_replication_slots WHERE slot_name = $1`, [settings.slot]),
    )
      .then(({ rows }) => report(Math.max(0, Number(rows[0]?.lag ?? 0))))
      .catch(() => undefined);
  };
  poll();
  const timer = setInterval(poll, 5000);
  timer.unref();
  return timer;
}

/** The statements of one heartbeat: a transactional logical message, then the action query if any. */
export function heartbeatStatements(actionQuery: string | undefined): string[] {
  return [`SELECT pg_logical_emit_message(true, 'grouparoo_stream_heartbeat', '')`, ...(actionQuery ? [actionQuery] : [])];
}

/** Writes a heartbeat every heartbeat.interval.ms (none when 0); returns the timer. */
export function startHeartbeat(settings: PostgresAppSettings, logger: Logger, stopped: () => boolean): NodeJS.Timeout | undefined {
  const interval = settings.heartbeatIntervalMs;
  if (interval <= 0) return undefined;
  let running = false;
  const timer = setInterval(() => {
    if (running || stopped()) return;
    running = true;
    void withClient(settings.connection, async (client) => {
      for (const sql of heartbeatStatements(settings.heartbeatActionQuery)) await client.query(sql);
    })
      .catch((error: Error) => logger.warn({ err: error }, "heartbeat failed"))
      .finally(() => (running = false));
  }, interval);
  timer.unref();
  return timer;
}
