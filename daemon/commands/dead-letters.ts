// `grouparoo-stream dead-letters --state DIR [--kind change|message|export] [--limit N] [--json]`: the
// dead letters of a state with their reasons, read-only (beside a running daemon too). The listing
// comes from streams/inspect.ts, which the daemon's API can serve as well.
import { Store } from "../../state/store.js";
import { deadLetters, type DeadLetterKind, type DeadLetterView } from "../../streams/inspect.js";
import { withStateErrors } from "../exit-codes.js";
import { table } from "./status.js";

export function formatDeadLetters(letters: readonly DeadLetterView[]): string {
  if (letters.length === 0) return "no dead letters\n";
  return table(
    ["SEQ", "AT", "KIND", "COMPONENT", "WHERE", "REASON"],
    letters.map((l) => [String(l.seq), l.at.replace(/\.\d+Z$/, "Z"), l.kind, l.component, l.kind === "export" ? `record ${l.recordId ?? "?"} after ${l.attempts ?? 1} attempt${l.attempts === 1 ? "" : "s"}` : (l.position ?? ""), l.reason]),
  );
}

export async function deadLettersCommand(options: { state: string; kind?: DeadLetterKind; limit?: number; json?: boolean }): Promise<number> {
  return withStateErrors(async () => {
    const store = Store.open(options.state, { readOnly: true });
    try {
      const letters = deadLetters(store, { ...(options.kind ? { kind: options.kind } : {}), ...(options.limit ? { limit: options.limit } : {}) });
      process.stdout.write(options.json ? `${JSON.stringify(letters, null, 2)}\n` : formatDeadLetters(letters));
      return 0;
    } finally {
      await store.close();
    }
  });
}
