// What the relay and the workers do alike before they start (README, "Beyond one machine"): load the
// config with its plugins and log its issues, find its partitioned models, and read --http.
import type { Logger } from "pino";
import { formatIssue } from "../core/config/issues.js";
import type { Config } from "../core/config/types.js";
import type { Domain } from "../core/domain.js";
import { modelTopics, type ModelTopics } from "../core/partitions.js";
import type { ComponentRegistry } from "../connectors/registry.js";
import { loadConfigWithPlugins } from "./config/validate.js";
import { EX_CONFIG, EX_USAGE } from "./exit-codes.js";
import { parseListen } from "./http.js";

/** The partitioned models of a config, by model id. */
export function partitionedModels(config: Config): Map<string, ModelTopics> {
  const out = new Map<string, ModelTopics>();
  for (const model of config.models) {
    const topics = modelTopics(model);
    if (topics) out.set(model.id, topics);
  }
  return out;
}

export interface PartitionedConfig {
  config: Config;
  domain: Domain;
  registry: ComponentRegistry;
  models: Map<string, ModelTopics>;
  listen: { host: string; port: number };
}

/** The config a relay or worker runs, or the exit code when it cannot start (`idle` says why a config without partitioned models cannot). */
export async function loadPartitioned(options: { config: string; plugins?: string[]; http: string }, logger: Logger, idle: string): Promise<PartitionedConfig | number> {
  let loaded;
  try {
    loaded = await loadConfigWithPlugins(options.config, options.plugins ?? []);
  } catch (error) {
    logger.error({ err: error }, (error as Error).message);
    return EX_CONFIG;
  }
  for (const issue of loaded.issues) (issue.severity === "error" ? logger.error.bind(logger) : logger.warn.bind(logger))({ issue }, formatIssue(issue));
  const { config, domain, registry } = loaded;
  if (!config || !domain) {
    logger.error({ config: options.config }, "invalid config; not starting");
    return EX_CONFIG;
  }
  const models = partitionedModels(config);
  if (models.size === 0) {
    logger.error({ config: options.config }, `no model of this config is partitioned (a model's \`partitioned\` option): ${idle}`);
    return EX_CONFIG;
  }
  // A model not partitioned is no relay's or worker's: nothing of it would be read or sent, without a
  // word (before 2026-12-03), and a `run` on this config would read the relay's slot. Said at start.
  for (const model of config.models) {
    if (models.has(model.id)) continue;
    const sources = config.sources.filter((s) => s.modelId === model.id).map((s) => s.id);
    const destinations = config.destinations.filter((d) => d.modelId === model.id).map((d) => d.id);
    logger.warn(
      { model: model.id, sources, destinations },
      `model "${model.id}" is not partitioned: the relay and the workers leave it alone (its sources ${sources.length > 0 ? sources.join(", ") : "(none)"} are not read, its destinations ${destinations.length > 0 ? destinations.join(", ") : "(none)"} are sent nothing); run it with grouparoo-stream run on a config of its own whose postgres apps use slots of their own, or make it partitioned`,
    );
  }
  try {
    return { config, domain, registry, models, listen: parseListen(options.http) };
  } catch (error) {
    logger.error({ http: options.http }, (error as Error).message);
    return EX_USAGE;
  }
}
