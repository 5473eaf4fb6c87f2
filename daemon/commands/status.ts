// `grouparoo-stream status --state DIR [--json]`: what a state holds, read-only (beside a running
// daemon too): positions, records by model, group sizes, outbox depths, dead letters, Runs. The summary
// itself comes from streams/inspect.ts, which the daemon's API can serve as well.
import { Store } from "../../state/store.js";
import { stateStatus, type StateStatus } from "../../streams/inspect.js";
import { withStateErrors } from "../exit-codes.js";
import { formatRuns } from "./runs.js";

/** Rows of cells as aligned columns. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd()).join("\n") + "\n";
}

export function formatStatus(status: StateStatus): string {
  const parts: string[] = [`state ${status.path}\n`];
  const section = (title: string, header: string[], rows: string[][]) => parts.push(`\n${title}\n${rows.length === 0 ? "(none)\n" : table(header, rows)}`);
  section("positions", ["STREAM", "POSITION"], status.positions.map((p) => [p.stream, p.position]));
  section("records", ["MODEL", "RECORDS"], status.records.map((r) => [r.model, String(r.count)]));
  section("groups", ["GROUP", "MEMBERS"], status.groups.map((g) => [g.group, String(g.members)]));
  section("outbox", ["DESTINATION", "WAITING"], status.outbox.map((o) => [o.destination, String(o.depth)]));
  const d = status.deadLetters;
  parts.push(`\ndead letters: ${d.change} change, ${d.message} message, ${d.export} export (grouparoo-stream dead-letters lists them)\n`);
  parts.push(`\nruns\n${status.runs.length === 0 ? "(none)\n" : formatRuns(status.runs)}`);
  return parts.join("");
}

export async function statusCommand(options: { state: string; json?: boolean }): Promise<number> {
  return withStateErrors(async () => {
    const store = Store.open(options.state, { readOnly: true });
    try {
      const status = stateStatus(store);
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return 0;
    } finally {
      await store.close();
    }
  });
}
