// The status page at /: the daemon's status (status.ts) as one server-rendered HTML page, read-only,
// with no script and nothing loaded from elsewhere (the styles are inline; the Content-Security-Policy
// the server sends allows nothing else). It reloads itself every 5 seconds; a browser presents its key
// by HTTP Basic (the key as the password), which it then sends again with every reload.
import type { RunState } from "../../streams/runs.js";
import type { DaemonStatus } from "./status.js";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value: unknown): string => String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
const num = (n: number | null | undefined): string => (n === null || n === undefined ? "–" : n.toLocaleString("en"));
const seconds = (s: number | null): string => (s === null ? "–" : s < 1 ? `${Math.round(s * 1000)} ms` : s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

function table(id: string, header: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty" id="${id}-empty">${esc(empty)}</p>`;
  return `<table id="${id}"><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.map((r) => `<tr>${r.join("")}</tr>`).join("")}</tbody></table>`;
}
const td = (value: unknown, cls = ""): string => `<td${cls ? ` class="${cls}"` : ""}>${esc(value)}</td>`;

/**
 * A Run's progress as the page shows it: its share of its total, or without a total (a removal counts
 * what it drops) what it did, and 100 % once complete, with no total made up for it.
 */
export function runProgressLabel(run: Pick<RunState, "processed" | "total" | "state">): { ratio: number | null; label: string } {
  if (run.total) {
    const ratio = Math.min(1, run.processed / run.total);
    return { ratio, label: `${Math.floor(ratio * 100)} % (${num(run.processed)} / ${num(run.total)})` };
  }
  return run.state === "complete" ? { ratio: 1, label: `100 % (${num(run.processed)} done)` } : { ratio: null, label: `${num(run.processed)} done` };
}

function progress(run: RunState): string {
  const { ratio, label } = runProgressLabel(run);
  return `<td class="progress"><div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" ${ratio === null ? "" : `aria-valuenow="${Math.floor(ratio * 100)}"`} data-run="${esc(run.id)}"><div class="fill" style="width:${ratio === null ? 0 : (ratio * 100).toFixed(1)}%"></div></div><span>${esc(label)}</span></td>`;
}

export function renderStatusPage(status: DaemonStatus): string {
  const sources = table(
    "sources",
    ["App", "Type", "Sources", "State", "Paused", "Lag", "Streams"],
    status.sources.map((s) => [
      td(s.app),
      td(s.type),
      td(s.sources.join(", ")),
      `<td class="state ${s.state}">${esc(s.state)}${s.problem ? `<div class="problem">${esc(s.problem)}</div>` : ""}</td>`,
      td(s.paused ? "yes" : "no"),
      td([s.lagBytes === null ? "" : `${num(s.lagBytes)} bytes`, ...s.streams.map((st) => (st.lagSeconds === null ? "" : seconds(st.lagSeconds))), ...s.streams.map((st) => (st.kafkaLag === null ? "" : `${num(st.kafkaLag)} messages`))].filter(Boolean).join(", ") || "–", "lag"),
      td(s.streams.map((st) => `${st.stream} @ ${st.position ?? "–"}`).join("; ") || "–"),
    ]),
    "no sources",
  );
  const destinations = table(
    "destinations",
    ["Destination", "Type", "Model", "Ready", "Outbox", "Oldest waiting", "Delivered", "Retries", "Dead letters"],
    status.destinations.map((d) => [
      td(d.id),
      td(d.type),
      td(d.modelId),
      `<td class="state ${d.ready ? "streaming" : "failing"}">${d.ready ? "yes" : "no"}${d.problem ? `<div class="problem">${esc(d.problem)}</div>` : ""}</td>`,
      td(num(d.outboxDepth), "outbox"),
      td(seconds(d.oldestPendingSeconds)),
      td(num(d.exports.ok)),
      td(num(d.exports.retry)),
      td(num(d.deadLetters), d.deadLetters > 0 ? "bad" : ""),
    ]),
    "no destinations",
  );
  const groups = table("groups", ["Group", "Model", "Members"], status.groupSizes.map((g) => [td(g.id), td(g.modelId), td(num(g.members), "members")]), "no groups");
  const records = table("records", ["Model", "Records"], status.records.map((r) => [td(r.model), td(num(r.count))]), "no models");
  const runs = table(
    "runs",
    ["Run", "Kind", "Target", "State", "Progress", "Started"],
    status.runs.map((r) => [td(r.id), td(r.kind), td(r.target), `<td class="state run-${esc(r.state)}">${esc(r.state)}${r.error ? `<div class="problem">${esc(r.error)}</div>` : ""}</td>`, progress(r), td(r.startedAt ? new Date(r.startedAt).toISOString().replace(/\.\d+Z$/, "Z") : "–")]),
    "no runs",
  );
  const d = status.deadLetters;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>grouparoo-stream: ${status.ready ? "ready" : "not ready"}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; background: #f7f8fa; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
.summary { color: #4a5562; } .summary b { color: #1d232a; }
table { border-collapse: collapse; background: #fff; min-width: 40%; box-shadow: 0 1px 2px #0001; }
th, td { text-align: left; padding: .35rem .7rem; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
.state.streaming, .state.run-complete { color: #137333; } .state.connecting, .state.run-queued, .state.run-running { color: #9a6700; } .state.failing, .state.run-failed, .bad { color: #b3261e; font-weight: 600; }
.problem { font-size: .85em; color: #b3261e; font-weight: normal; max-width: 40rem; }
.badge { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; font-weight: 600; color: #fff; }
.badge.ready { background: #137333; } .badge.not-ready { background: #b3261e; }
.bar { display: inline-block; width: 12rem; height: .8rem; background: #e4e7eb; border-radius: .4rem; overflow: hidden; vertical-align: middle; margin-right: .5rem; }
.fill { height: 100%; background: #1a73e8; }
.empty { color: #6b7580; }
</style>
</head>
<body>
<h1>grouparoo-stream <span class="badge ${status.ready ? "ready" : "not-ready"}" id="readiness">${status.ready ? "ready" : "not ready"}</span></h1>
<p class="summary">version <b>${esc(status.version)}</b> · pid <b>${status.pid}</b> · up <b id="uptime">${esc(seconds(status.uptimeSeconds))}</b> · config <b>${esc(status.configDigest)}</b> · state <b>${esc(status.path)}</b>${status.notReady ? ` · <span class="bad" id="not-ready">${esc(status.notReady)}</span>` : ""}</p>
<h2>Sources</h2>
${sources}
<h2>Destinations</h2>
${destinations}
<h2>Groups</h2>
${groups}
<h2>Records</h2>
${records}
<h2>Runs</h2>
${runs}
<h2>Dead letters</h2>
<p id="dead-letters">${num(d.change)} change, ${num(d.message)} message, ${num(d.export)} export</p>
</body>
</html>
`;
}
