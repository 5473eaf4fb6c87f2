// `grouparoo-stream runs` lists the Runs of a state (what config changes, or `rebuild`, asked for, and
// how far each is); `grouparoo-stream rebuild` asks for Runs by hand: the running daemon starts them
// within a second, a stopped one when it starts.
import { rebuildRequests } from "../../core/rebuild.js";
import { Store } from "../../state/store.js";
import { listRuns, type RunState } from "../../streams/runs.js";
import { loadValidConfig } from "../config/validate.js";
import type { RunRequest } from "../daemon.js";
import { EX_USAGE, withStateErrors } from "../exit-codes.js";

const when = (ms: number | undefined) => (ms === undefined ? "" : new Date(ms).toISOString().replace(/\.\d+Z$/, "Z"));

export function formatRuns(runs: readonly RunState[]): string {
  const rows = runs.map((r) => [
    r.id,
    r.kind,
    r.target,
    r.state,
    `${r.processed}/${r.total ?? "?"}`,
    r.total ? `${Math.min(100, Math.floor((100 * r.processed) / r.total))}%` : r.state === "complete" ? "100%" : "",
    when(r.startedAt),
    when(r.finishedAt),
    r.error ?? "",
  ]);
  const header = ["ID", "KIND", "TARGET", "STATE", "DONE/TOTAL", "%", "STARTED", "FINISHED", "ERROR"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd()).join("\n") + "\n";
}

export async function runsCommand(options: { state: string; json?: boolean }): Promise<number> {
  return withStateErrors(async () => {
    const store = Store.open(options.state, { readOnly: true });
    try {
      const runs = listRuns(store);
      process.stdout.write(options.json ? `${JSON.stringify(runs, null, 2)}\n` : runs.length === 0 ? "no runs\n" : formatRuns(runs));
      return 0;
    } finally {
      await store.close();
    }
  });
}

export interface RebuildOptions {
  config: string;
  state: string;
  plugin?: string[];
  property?: string;
  source?: string;
  group?: string;
  destination?: string;
  all?: boolean;
}

export async function rebuildCommand(options: RebuildOptions): Promise<number> {
  const loaded = await loadValidConfig(options.config, options.plugin ?? []);
  if (typeof loaded === "number") return loaded;
  const requests = rebuildRequests(loaded.domain, options);
  if (!Array.isArray(requests)) {
    process.stderr.write(`error: ${requests.message}\n`);
    return EX_USAGE;
  }
  return withStateErrors(async () => {
    const store = Store.open(options.state, { create: false });
    try {
      const at = Date.now();
      await store.transact((tx) => {
        requests.forEach(({ spec, target }, i) => {
          const request: RunRequest = { spec, target, reason: "asked for by grouparoo-stream rebuild", at: at * 1000 + i };
          tx.putMeta(`request:${request.at}`, request);
        });
      });
      process.stdout.write(`requested ${requests.length} run${requests.length === 1 ? "" : "s"}: ${requests.map((r) => `${r.spec.kind} ${r.target}`).join(", ")}; a running daemon starts them within a second, a stopped one when it starts\n`);
      return 0;
    } finally {
      await store.close();
    }
  });
}
