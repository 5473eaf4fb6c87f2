// Third-party plugins: npm packages (or paths) named with --plugin, resolved from the working
// directory, whose default (or `plugin`) export is a GrouparooStreamPlugin. Their destination types
// register beside the built-ins and their options schemas join the config validation.
import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ConnectorRegistry, GrouparooStreamPlugin } from "../connectors/types.js";

export class PluginLoadError extends Error {
  readonly code = "PLUGIN_LOAD_FAILED";
}

function isPlugin(value: unknown): value is GrouparooStreamPlugin {
  return typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string";
}

export async function loadPlugins(names: readonly string[], registry: ConnectorRegistry, cwd = process.cwd()): Promise<GrouparooStreamPlugin[]> {
  const require = createRequire(join(cwd, "grouparoo-stream-plugins.js"));
  const loaded: GrouparooStreamPlugin[] = [];
  for (const name of names) {
    let path: string;
    try {
      path = name.startsWith(".") || isAbsolute(name) ? require.resolve(resolve(cwd, name)) : require.resolve(name);
    } catch (error) {
      throw new PluginLoadError(`plugin ${name}: cannot be found from ${cwd} (${(error as Error).message.split("\n")[0]}); install it with npm install ${name}`);
    }
    const module = (await import(pathToFileURL(path).href)) as { default?: unknown; plugin?: unknown };
    const plugin = isPlugin(module.default) ? module.default : isPlugin(module.plugin) ? module.plugin : undefined;
    if (!plugin) throw new PluginLoadError(`plugin ${name}: ${path} exports no plugin (a default or \`plugin\` export with a name, sources and/or destinations)`);
    for (const destination of plugin.destinations ?? []) {
      if (!destination.appType) throw new PluginLoadError(`plugin ${name}: destination type ${destination.destinationType} does not say which app type it writes through (appType)`);
      if (registry.destinationPlugin(destination.destinationType)) throw new PluginLoadError(`plugin ${name}: destination type ${destination.destinationType} is already registered`);
      registry.registerDestination(destination);
    }
    for (const source of plugin.sources ?? []) registry.registerSource(source);
    loaded.push(plugin);
  }
  return loaded;
}
