// status's text for a terminal: a running daemon's outbox depths are printed once, with the destinations
// it serves; the state's outbox section keeps the others (one removed from the config, still queued).
import { describe, expect, it } from "vitest";
import { formatStatus } from "../../daemon/commands/status.js";
import type { StateStatus } from "../../streams/inspect.js";

const status: StateStatus = {
  path: "/var/lib/grouparoo-stream",
  positions: [{ stream: "shop", position: "0/16B3748" }],
  records: [{ model: "users", count: 3 }],
  groups: [{ group: "vips", members: 1 }],
  outbox: [
    { destination: "contacts", depth: 2 },
    { destination: "old_webhook", depth: 5 },
  ],
  deadLetters: { change: 0, message: 0, export: 0 },
  runs: [],
};

describe("formatStatus", () => {
  it("prints every destination's outbox for a state (status --state)", () => {
    expect(formatStatus(status)).toContain("\noutbox\nDESTINATION  WAITING\ncontacts     2\nold_webhook  5\n");
  });

  it("leaves out the destinations a running daemon's table shows, and keeps the others", () => {
    const text = formatStatus(status, { shown: new Set(["contacts"]) });
    expect(text).toContain("\noutbox\nDESTINATION  WAITING\nold_webhook  5\n\ndead letters:");
  });

  it("prints no outbox section when the daemon's table shows them all", () => {
    const text = formatStatus(status, { shown: new Set(["contacts", "old_webhook"]) });
    expect(text).not.toContain("\noutbox\n");
    expect(text).toContain("\ngroups\nGROUP  MEMBERS\nvips   1\n\ndead letters: 0 change, 0 message, 0 export");
  });
});
