// What /readyz says of sources and destinations, in one place for `run`, the relay and the worker:
// a permanent problem names the component and why; one not ready without a problem is not connected
// (a source) or unreachable (a destination). Each returns the reasons to join, none when all are well.

interface Reporting {
  ready(): boolean;
  problem?(): string | null;
}

/**
 * Sources: failing (a permanent problem, named with its app), then those `held` back on purpose (named
 * with its reason; `run`'s sources waiting for Runs), then not connected.
 */
export function sourceReasons<S extends Reporting & { appId: string }>(sources: readonly S[], held?: { is(source: S): boolean; reason: string }): string[] {
  const reasons: string[] = [];
  const failing = sources.flatMap((s) => {
    const problem = s.problem?.() ?? null;
    return problem === null ? [] : [`${s.appId} (${problem})`];
  });
  if (failing.length > 0) reasons.push(`sources failing: ${failing.join("; ")}`);
  const waiting = held ? sources.filter((s) => held.is(s)).map((s) => s.appId) : [];
  if (waiting.length > 0) reasons.push(`${held?.reason}: ${waiting.join(", ")}`);
  const down = sources.filter((s) => !s.ready() && (s.problem?.() ?? null) === null && !(held?.is(s) ?? false)).map((s) => s.appId);
  if (down.length > 0) reasons.push(`sources not connected: ${down.join(", ")}`);
  return reasons;
}

/** Destinations: failing (a permanent problem, named with the destination), then unreachable. */
export function destinationReasons(destinations: readonly (Reporting & { destinationId: string })[]): string[] {
  const reasons: string[] = [];
  const broken = destinations.flatMap((d) => {
    const problem = d.problem?.() ?? null;
    return problem === null ? [] : [`${d.destinationId} (${problem})`];
  });
  if (broken.length > 0) reasons.push(`destinations failing: ${broken.join("; ")}`);
  const unreachable = destinations.filter((d) => !d.ready() && (d.problem?.() ?? null) === null).map((d) => d.destinationId);
  if (unreachable.length > 0) reasons.push(`destinations unreachable: ${unreachable.join(", ")}`);
  return reasons;
}
