// Loading and validating a config as the commands do: the files read (load.ts), then validated and
// compiled by the core against the component registry (built-ins and loaded plugins).
import { validateObjects as validateWith, type ValidationResult } from "../../core/config/validate.js";
import { formatIssue, type ConfigIssue } from "../../core/config/issues.js";
import type { Config } from "../../core/config/types.js";
import type { Domain } from "../../core/domain.js";
import type { RawObject } from "../../core/config/types.js";
import { builtinComponents, type ComponentRegistry } from "../../connectors/registry.js";
import { EX_CONFIG } from "../exit-codes.js";
import { loadPlugins } from "../plugins.js";
import { readConfig } from "./load.js";

export type { ValidationResult };

/** Validates raw objects against the registry (the built-in components by default). */
export function validateObjects(objects: readonly RawObject[], registry: ComponentRegistry = builtinComponents(), extraIssues: readonly ConfigIssue[] = []): ValidationResult {
  return validateWith(objects, registry, extraIssues);
}

/** Reads a config file or directory and validates it. */
export function loadConfig(path: string, registry: ComponentRegistry = builtinComponents(), env: Readonly<Record<string, string | undefined>> = process.env): ValidationResult {
  const { objects, issues } = readConfig(path, env);
  return validateWith(objects, registry, issues);
}

/**
 * What every command that loads a config does first: the built-in components and those of the plugins
 * named (--plugin), then the config validated against them. Throws PluginLoadError for a plugin that
 * cannot be loaded.
 */
export async function loadConfigWithPlugins(path: string, plugins: readonly string[] = []): Promise<ValidationResult & { registry: ComponentRegistry }> {
  const registry = builtinComponents();
  await loadPlugins(plugins, registry);
  return { ...loadConfig(path, registry), registry };
}

/**
 * For a command that needs a valid config (rebuild, retry-exports): the config and its domain, or the
 * exit code after the reason went to stderr (a plugin that cannot load, every issue of an invalid config).
 */
export async function loadValidConfig(path: string, plugins: readonly string[] = []): Promise<{ config: Config; domain: Domain } | number> {
  let loaded: ValidationResult;
  try {
    loaded = await loadConfigWithPlugins(path, plugins);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return EX_CONFIG;
  }
  if (!loaded.config || !loaded.domain) {
    for (const issue of loaded.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    return EX_CONFIG;
  }
  return { config: loaded.config, domain: loaded.domain };
}
