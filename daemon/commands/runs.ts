// `grouparoo-stream runs` lists the Runs of a state (what config changes, or `rebuild`, asked for, and
// how far each is); `grouparoo-stream rebuild` asks for Runs by hand: the running daemon starts them
// within a second, a stopped one when it starts.
import type { Domain } from "../../core/domain.js";
import type { RunSpec } from "../../core/definitions.js";
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

/** The Runs that rebuild what the options name, from the source data. */
export function rebuildRequests(domain: Domain, options: Pick<RebuildOptions, "property" | "source" | "group" | "destination" | "all">): { spec: RunSpec; target: string }[] | string {
  const requests: { spec: RunSpec; target: string }[] = [];
  const reread = (sourceId: string) => {
    const source = domain.sources.get(sourceId);
    if (source) requests.push({ spec: { kind: "reread", sourceId, modelId: source.modelId }, target: `source ${sourceId}` });
  };
  if (options.property !== undefined) {
    const property = domain.properties.get(options.property);
    if (!property) return `no property "${options.property}" in the config`;
    if (domain.sources.get(property.sourceId)?.primary) reread(property.sourceId);
    else requests.push({ spec: { kind: "rebuild", sourceId: property.sourceId, modelId: property.modelId, propertyIds: [property.id] }, target: `property ${property.id}` });
  }
  if (options.source !== undefined) {
    if (!domain.sources.has(options.source)) return `no source "${options.source}" in the config`;
    reread(options.source);
  }
  if (options.group !== undefined) {
    const group = domain.groups.get(options.group);
    if (!group) return `no group "${options.group}" in the config`;
    requests.push({ spec: { kind: "backfill", groupId: group.id, modelId: group.modelId }, target: `group ${group.id}` });
  }
  if (options.destination !== undefined) {
    const destination = domain.destinations.get(options.destination);
    if (!destination) return `no destination "${options.destination}" in the config`;
    requests.push({ spec: { kind: "export", destinationId: destination.id, modelId: destination.modelId, reset: false }, target: `destination ${destination.id}` });
  }
  if (options.all) {
    for (const id of domain.sources.keys()) reread(id);
    for (const group of domain.groups.values()) requests.push({ spec: { kind: "backfill", groupId: group.id, modelId: group.modelId }, target: `group ${group.id}` });
    for (const d of domain.destinations.values()) requests.push({ spec: { kind: "export", destinationId: d.id, modelId: d.modelId, reset: false }, target: `destination ${d.id}` });
  }
  if (requests.length === 0) return "name what to rebuild: --property, --source, --group, --destination or --all";
  return requests;
}

export async function rebuildCommand(options: RebuildOptions): Promise<number> {
  const loaded = await loadValidConfig(options.config, options.plugin ?? []);
  if (typeof loaded === "number") return loaded;
  const requests = rebuildRequests(loaded.domain, options);
  if (typeof requests === "string") {
    process.stderr.write(`error: ${requests}\n`);
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
