// `grouparoo-stream validate --config PATH`: load and check a config; exit 0, or 78 (EX_CONFIG)
// with every error, each naming the file, the object, the field and the problem.
import { formatIssue } from "../../core/config/issues.js";
import type { Config } from "../../core/config/types.js";
import { loadConfigWithPlugins } from "../config/validate.js";
import { EX_CONFIG } from "../exit-codes.js";
import { checkLive, formatLiveProblem, idleWarning } from "../live.js";

export { EX_CONFIG };

export function summarize(config: Config): string {
  const counts: [string, string, number][] = [
    ["app", "apps", config.apps.length],
    ["model", "models", config.models.length],
    ["source", "sources", config.sources.length],
    ["property", "properties", config.properties.length],
    ["group", "groups", config.groups.length],
    ["destination", "destinations", config.destinations.length],
    ["schedule", "schedules", config.schedules.length],
    ["apiKey", "apiKeys", config.apiKeys.length],
  ];
  return counts
    .filter(([, , n]) => n > 0)
    .map(([one, many, n]) => `${n} ${n === 1 ? one : many}`)
    .join(", ");
}

export interface ValidateOptions {
  config: string;
  json?: boolean;
  /** Also check the sources and destinations against the live systems (daemon/live.ts). */
  connect?: boolean;
  plugin?: string[];
}

export async function validateCommand(options: ValidateOptions): Promise<number> {
  let result: Awaited<ReturnType<typeof loadConfigWithPlugins>>;
  try {
    result = await loadConfigWithPlugins(options.config, options.plugin ?? []);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return EX_CONFIG;
  }
  const errors = result.issues.filter((i) => i.severity === "error");
  const idle = result.config ? idleWarning(result.config) : undefined;
  // With --connect, a valid config is also checked against the live databases.
  const live = options.connect && result.config ? await checkLive(result.config, result.registry) : [];
  const liveErrors = live.filter((p) => p.permanent);
  const valid = errors.length === 0 && liveErrors.length === 0;
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ valid, issues: result.issues, ...(idle ? { warnings: [idle] } : {}), ...(options.connect ? { live } : {}) }, null, 2)}\n`);
    return valid ? 0 : EX_CONFIG;
  }
  for (const issue of result.issues) process.stderr.write(`${formatIssue(issue)}\n`);
  if (!result.config) {
    process.stderr.write(`${options.config}: invalid config: ${errors.length} error${errors.length === 1 ? "" : "s"}\n`);
    return EX_CONFIG;
  }
  if (idle) process.stderr.write(`warning: ${options.config}: ${idle}\n`);
  for (const problem of live) process.stderr.write(`${problem.permanent ? "error" : "warning"}: ${formatLiveProblem(problem)}\n`);
  if (liveErrors.length > 0) {
    process.stderr.write(`${options.config}: the live check failed: ${liveErrors.length} error${liveErrors.length === 1 ? "" : "s"}\n`);
    return EX_CONFIG;
  }
  // What the live check could not settle (a system not reached, a topic not made yet) is a warning above: said here too.
  const warned = live.length - liveErrors.length;
  const checked = !options.connect ? "" : warned === 0 ? " (checked against the live systems)" : ` (checked against the live systems, with ${warned} warning${warned === 1 ? "" : "s"} above: what ${warned === 1 ? "it names" : "they name"} was not checked)`;
  process.stdout.write(`${options.config}: valid config: ${summarize(result.config) || "nothing defined"}${checked}\n`);
  return 0;
}
