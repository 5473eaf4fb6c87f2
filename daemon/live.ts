// The start-time check against the live systems (`run` before it starts, `validate --connect`): each
// component that can (its descriptor's checkLive) checks its objects, one app at a time, in parallel;
// a source type's check is given the properties that read its sources.
import type { Config } from "../core/config/types.js";
import type { ComponentRegistry } from "../connectors/registry.js";
import type { LiveProblem } from "../connectors/types.js";

export async function checkLive(config: Config, registry: ComponentRegistry): Promise<LiveProblem[]> {
  const checks: Promise<LiveProblem[]>[] = [];
  const byAppAndType = new Map<string, Config["sources"]>();
  for (const source of config.sources) {
    const key = `${source.appId}\u0000${source.type}`;
    byAppAndType.set(key, [...(byAppAndType.get(key) ?? []), source]);
  }
  for (const sources of byAppAndType.values()) {
    const first = sources[0];
    const app = first && config.apps.find((a) => a.id === first.appId);
    const check = first && registry.sources.get(first.type)?.checkLive;
    const ids = new Set(sources.map((s) => s.id));
    if (app && check) checks.push(check(app, sources, { properties: config.properties.filter((p) => ids.has(p.sourceId)) }));
  }
  for (const destination of config.destinations) {
    const app = config.apps.find((a) => a.id === destination.appId);
    const check = registry.destinations.get(destination.type)?.checkLive;
    if (app && check) checks.push(check(destination, app));
  }
  const found = (await Promise.all(checks)).flat();
  // One line per problem: an app that cannot be reached is named once, not once per component.
  const seen = new Set<string>();
  return found.filter((p) => {
    const key = `${p.objectClass}\u0000${p.id}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A live problem as one line: `source "users_table": table public.users does not exist`. */
export function formatLiveProblem(problem: LiveProblem): string {
  return `${problem.objectClass} "${problem.id}": ${problem.message}`;
}

/** The warning for a config with nothing to read, or undefined. */
export function idleWarning(config: Config): string | undefined {
  return config.sources.length === 0 ? "the config defines no sources: the daemon would run idle" : undefined;
}
