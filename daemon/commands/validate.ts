// `grouparoo-stream validate --config PATH`: load and check a config; exit 0, or 78 (EX_CONFIG)
// with every error, each naming the file, the object, the field and the problem.
import { formatIssue } from "../../core/config/issues.js";
import type { Config } from "../../core/config/types.js";
import { loadConfigWithPlugins, type ValidationResult } from "../config/validate.js";

export const EX_CONFIG = 78;

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
  plugin?: string[];
}

export async function validateCommand(options: ValidateOptions): Promise<number> {
  let result: ValidationResult;
  try {
    result = await loadConfigWithPlugins(options.config, options.plugin ?? []);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return EX_CONFIG;
  }
  const errors = result.issues.filter((i) => i.severity === "error");
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ valid: errors.length === 0, issues: result.issues }, null, 2)}\n`);
    return errors.length === 0 ? 0 : EX_CONFIG;
  }
  for (const issue of result.issues) process.stderr.write(`${formatIssue(issue)}\n`);
  if (!result.config) {
    process.stderr.write(`${options.config}: invalid config: ${errors.length} error${errors.length === 1 ? "" : "s"}\n`);
    return EX_CONFIG;
  }
  process.stdout.write(`${options.config}: valid config: ${summarize(result.config)}\n`);
  return 0;
}
