// Third-party plugins: npm packages (or paths) named with --plugin, resolved from the working
// directory, whose default (or `plugin`) export is a GrouparooStreamPlugin. Their apps, sources and
// destinations register beside the built-ins (the same descriptors), and their options schemas join
// the config validation and every command that loads a config.
import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ComponentRegistry } from "../connectors/registry.js";
import type { GrouparooStreamPlugin } from "../connectors/types.js";

export class PluginLoadError extends Error {
  readonly code = "PLUGIN_LOAD_FAILED";
}

function isPlugin(value: unknown): value is GrouparooStreamPlugin {
  return typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string";
}

function checkComponents(name: string, plugin: GrouparooStreamPlugin): void {
  for (const [kind, list] of [["app", plugin.apps], ["source", plugin.sources], ["destination", plugin.destinations]] as const) {
    for (const component of list ?? []) {
      const c = component as { type?: unknown; options?: unknown; create?: unknown; appType?: unknown };
      if (typeof c.type !== "string" || c.type === "") throw new PluginLoadError(`plugin ${name}: a ${kind} without a type name (type)`);
      if (typeof c.options !== "object" || c.options === null) throw new PluginLoadError(`plugin ${name}: ${kind} type ${c.type} has no options schema (options: a JSON Schema)`);
      if (kind !== "app" && typeof c.appType !== "string") throw new PluginLoadError(`plugin ${name}: ${kind} type ${c.type} does not say which app type it runs on (appType)`);
      if (kind !== "app" && typeof c.create !== "function") throw new PluginLoadError(`plugin ${name}: ${kind} type ${c.type} has no create function`);
    }
  }
}

export async function loadPlugins(names: readonly string[], registry: ComponentRegistry, cwd = process.cwd()): Promise<GrouparooStreamPlugin[]> {
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
    if (!plugin) throw new PluginLoadError(`plugin ${name}: ${path} exports no plugin (a default or \`plugin\` export with a name and apps, sources and/or destinations)`);
    checkComponents(name, plugin);
    try {
      registry.register({ ...plugin, sources: (plugin.sources ?? []).map((s) => ({ ...s, metrics: s.metrics ?? [] })), destinations: (plugin.destinations ?? []).map((d) => ({ ...d, metrics: d.metrics ?? [] })) });
    } catch (error) {
      throw new PluginLoadError(`plugin ${name}: ${(error as Error).message}`);
    }
    loaded.push(plugin);
  }
  return loaded;
}
