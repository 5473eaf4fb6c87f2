// Signals that arrive while the command line loads (a few hundred ms, before a long-running command
// installs its own handlers). SIGHUP's default action ends the process, so a reload sent right after a
// start (systemd's ExecReload, a deploy tool's `kill -HUP`) would kill the daemon. For `run`, `relay`
// and `worker`, a SIGHUP is remembered from the first module the executable evaluates (cli.ts imports
// only this one statically) and handed to the command: `run` reloads once started, the others log it as
// they do any SIGHUP. Before Node runs any JavaScript (its own start, some tens of ms) nothing can.
// SIGTERM and SIGINT keep their default action until the command's handlers exist: nothing has started.

/** The commands that run until signalled, whose SIGHUP means "reload" rather than "hang up". */
export const LONG_RUNNING_COMMANDS: ReadonlySet<string> = new Set(["run", "relay", "worker"]);

/**
 * What was remembered, kept in the process rather than in this module: the executable evaluates its
 * own copy of the module (dist/daemon/early-signals.js) and the bundled program another (bundle.ts),
 * and both must see the same SIGHUP.
 */
interface Early {
  arrived: boolean;
  readonly remember: () => void;
}
const EARLY = Symbol.for("grouparoo-stream.early-sighup");
const early = ((globalThis as { [EARLY]?: Early })[EARLY] ??= {
  arrived: false,
  remember: () => {
    early.arrived = true;
  },
});

/** Starts remembering SIGHUPs if `argv` runs a long-running command (process.argv: node, script, command). */
export function catchEarlySighup(argv: readonly string[]): void {
  if (LONG_RUNNING_COMMANDS.has(argv[2] ?? "") && !process.listeners("SIGHUP").includes(early.remember)) process.on("SIGHUP", early.remember);
}

/**
 * Whether a SIGHUP arrived before the command's own handlers; it stops remembering them. Call it once
 * the command's SIGHUP handler is installed, so that no signal falls between the two.
 */
export function takeEarlySighup(): boolean {
  process.off("SIGHUP", early.remember);
  const was = early.arrived;
  early.arrived = false;
  return was;
}

catchEarlySighup(process.argv);
