// `grouparoo-stream status --state DIR [--json]`: what a state holds, read-only (beside a running
// daemon too): positions, records by model, group sizes, outbox depths, dead letters, Runs. The summary
// itself comes from streams/inspect.ts, which the daemon's API serves as well.
// `grouparoo-stream status --url URL [--api-key KEY] [--json]`: the running daemon's status, from its
// API (GET /api/v1/status): the same summary, and what only the running daemon knows (sources' state
// and lag, destinations' readiness and failures, Runs in progress, version, uptime).
import { request } from "undici";
import { Store } from "../../state/store.js";
import { stateStatus, type StateStatus } from "../../streams/inspect.js";
import type { DaemonStatus } from "../api/status.js";
import { EX_NOPERM, EX_UNAVAILABLE, EX_USAGE, withStateErrors } from "../exit-codes.js";
import { API_KEY_ENV } from "../flags.js";
import { formatRuns } from "./runs.js";

/** Rows of cells as aligned columns. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd()).join("\n") + "\n";
}

/**
 * A state's summary for a terminal. `shown`: destinations whose outbox is printed elsewhere (a running
 * daemon's, with each destination it serves), left out of the outbox section, which is printed only
 * when others remain (one removed from the config whose Run still empties its queue).
 */
export function formatStatus(status: StateStatus, options: { shown?: ReadonlySet<string> } = {}): string {
  const parts: string[] = [`state ${status.path}\n`];
  const section = (title: string, header: string[], rows: string[][]) => parts.push(`\n${title}\n${rows.length === 0 ? "(none)\n" : table(header, rows)}`);
  section("positions", ["STREAM", "POSITION"], status.positions.map((p) => [p.stream, p.position]));
  section("records", ["MODEL", "RECORDS"], status.records.map((r) => [r.model, String(r.count)]));
  section("groups", ["GROUP", "MEMBERS"], status.groups.map((g) => [g.group, String(g.members)]));
  const { shown } = options;
  const outbox = shown ? status.outbox.filter((o) => !shown.has(o.destination)) : status.outbox;
  if (!shown || outbox.length > 0) section("outbox", ["DESTINATION", "WAITING"], outbox.map((o) => [o.destination, String(o.depth)]));
  const d = status.deadLetters;
  parts.push(`\ndead letters: ${d.change} change, ${d.message} message, ${d.export} export (grouparoo-stream dead-letters lists them)\n`);
  parts.push(`\nruns\n${status.runs.length === 0 ? "(none)\n" : formatRuns(status.runs)}`);
  return parts.join("");
}

const duration = (s: number | null): string => (s === null ? "-" : s < 1 ? `${Math.round(s * 1000)}ms` : s < 120 ? `${s.toFixed(1)}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`);

/** The running daemon's status for a terminal: itself, its sources and destinations, then the state's summary. */
export function formatDaemonStatus(status: DaemonStatus): string {
  const parts: string[] = [
    `grouparoo-stream ${status.version}, pid ${status.pid}, up ${duration(status.uptimeSeconds)}, config ${status.configDigest}: ${status.ready ? "ready" : `NOT READY (${status.notReady ?? "?"})`}\n`,
  ];
  const section = (title: string, header: string[], rows: string[][]) => parts.push(`\n${title}\n${rows.length === 0 ? "(none)\n" : table(header, rows)}`);
  section(
    "sources",
    ["APP", "TYPE", "SOURCES", "STATE", "PAUSED", "LAG", "STREAMS"],
    status.sources.map((s) => [
      s.app,
      s.type,
      s.sources.join(","),
      s.problem ? `${s.state}: ${s.problem}` : s.state,
      s.paused ? "yes" : "no",
      [s.lagBytes === null ? "" : `${s.lagBytes}B`, ...s.streams.map((st) => (st.lagSeconds === null ? "" : duration(st.lagSeconds))), ...s.streams.map((st) => (st.kafkaLag === null ? "" : `${st.kafkaLag}msg`))].filter(Boolean).join(" ") || "-",
      s.streams.map((st) => `${st.stream}@${st.position ?? "-"}`).join(" ") || "-",
    ]),
  );
  section(
    "destinations",
    ["DESTINATION", "TYPE", "READY", "OUTBOX", "OLDEST", "OK", "RETRIES", "DEAD LETTERS"],
    status.destinations.map((d) => [d.id, d.type, d.ready ? "yes" : d.problem ? `no: ${d.problem}` : "no", String(d.outboxDepth), duration(d.oldestPendingSeconds), String(d.exports.ok), String(d.exports.retry), String(d.deadLetters)]),
  );
  // The outbox of each destination served is in the destinations' table (OUTBOX), read at the same
  // moment as the rest of it; the state's outbox section keeps only the others.
  parts.push(`\n${formatStatus(status, { shown: new Set(status.destinations.map((d) => d.id)) })}`);
  return parts.join("");
}

export interface StatusOptions {
  state?: string;
  url?: string;
  apiKey?: string;
  json?: boolean;
}

/** The env variable `status --url` reads its key from when --api-key is not given. */

export async function statusCommand(options: StatusOptions): Promise<number> {
  if ((options.state === undefined) === (options.url === undefined)) {
    const which = options.state === undefined ? "neither was given" : "not both";
    process.stderr.write(`error: give --state DIR (a state on this machine) or --url URL (a running daemon), ${which}\n`);
    return EX_USAGE;
  }
  if (options.url !== undefined) return remoteStatus(options.url, options.apiKey ?? process.env[API_KEY_ENV], options.json ?? false);
  const state = options.state as string;
  return withStateErrors(async () => {
    const store = Store.open(state, { readOnly: true });
    try {
      const status = stateStatus(store);
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return 0;
    } finally {
      await store.close();
    }
  });
}

/** GET <url>/api/v1/status: 0 and the status; 77 when the key is refused; 69 when the daemon cannot answer. */
async function remoteStatus(url: string, apiKey: string | undefined, json: boolean): Promise<number> {
  const base = url.replace(/\/+$/, "");
  // undici's request, not fetch: fetch refuses the ports browsers block (6000, 6665-6669, 10080, ...),
  // and `run --http` may listen on any of them.
  let response: { statusCode: number; body: { text(): Promise<string> } };
  try {
    response = await request(`${base}/api/v1/status`, { headers: { accept: "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) }, headersTimeout: 10_000, bodyTimeout: 10_000 });
  } catch (error) {
    const { code, message } = error as { code?: string; message?: string };
    process.stderr.write(`error: cannot reach the daemon at ${base}: ${code && !code.startsWith("UND_ERR") ? code : (message ?? String(error))}\n`);
    return EX_UNAVAILABLE;
  }
  const ok = response.statusCode >= 200 && response.statusCode < 300;
  const text = await response.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    process.stderr.write(`error: ${base}/api/v1/status answered ${response.statusCode} without JSON: is it a grouparoo-stream daemon?\n`);
    return EX_UNAVAILABLE;
  }
  if (!ok) {
    const error = (body as { error?: { code?: string; message?: string } }).error;
    const hint = response.statusCode === 401 && !apiKey ? ` (give --api-key or set ${API_KEY_ENV})` : "";
    process.stderr.write(`error: the daemon at ${base} answered ${response.statusCode} ${error?.code ?? ""}: ${error?.message ?? text}${hint}\n`);
    return response.statusCode === 401 || response.statusCode === 403 ? EX_NOPERM : EX_UNAVAILABLE;
  }
  process.stdout.write(json ? `${JSON.stringify(body, null, 2)}\n` : formatDaemonStatus(body as DaemonStatus));
  return 0;
}
