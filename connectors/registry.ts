// The component registry: built-in apps, sources and destinations (one line each below) and those of
// plugins, by type. It is the catalog the config is validated against and the schema, JSON Schema file
// and README reference are generated from.
import type { ComponentCatalog } from "../core/config/types.js";
import { fileApp } from "./file/app.js";
import { jsonlFileDestination } from "./file/jsonl.js";
import { kafkaApp } from "./kafka/app.js";
import { kafkaDebeziumSource } from "./kafka/debezium-source.js";
import { kafkaTopicDestination } from "./kafka/topic.js";
import { postgresApp } from "./postgres/app.js";
import { postgresCdcSource } from "./postgres/cdc/index.js";
import { postgresQueryImportSource, postgresTableImportSource } from "./postgres/polling.js";
import { postgresTableDestination } from "./postgres/table.js";
import type { AppComponent, DestinationComponent, GrouparooStreamPlugin, SourceComponent } from "./types.js";
import { webhookApp } from "./webhook/app.js";
import { webhookDestination } from "./webhook/webhook.js";

export class ComponentRegistryError extends Error {
  readonly code = "COMPONENT_INVALID";
}

export class ComponentRegistry implements ComponentCatalog {
  readonly apps = new Map<string, AppComponent>();
  readonly sources = new Map<string, SourceComponent>();
  readonly destinations = new Map<string, DestinationComponent>();

  /** Adds a plugin's (or the built-ins') components; a type registered twice is refused. */
  register(plugin: GrouparooStreamPlugin): this {
    const add = <C extends { type: string }>(kind: string, map: Map<string, C>, components: readonly C[] | undefined) => {
      for (const component of components ?? []) {
        if (typeof component.type !== "string" || component.type === "") throw new ComponentRegistryError(`${plugin.name}: a ${kind} component without a type name`);
        if (map.has(component.type)) throw new ComponentRegistryError(`${plugin.name}: ${kind} type ${component.type} is already registered`);
        map.set(component.type, component);
      }
    };
    add("app", this.apps, plugin.apps);
    add("source", this.sources, plugin.sources);
    add("destination", this.destinations, plugin.destinations);
    for (const component of [...(plugin.sources ?? []), ...(plugin.destinations ?? [])]) {
      if (!this.apps.has(component.appType)) throw new ComponentRegistryError(`${plugin.name}: ${component.type} runs on ${component.appType} apps, a type no component registers`);
    }
    return this;
  }
}

export const BUILTIN_COMPONENTS: GrouparooStreamPlugin = {
  name: "built-in",
  apps: [postgresApp, kafkaApp, webhookApp, fileApp],
  sources: [postgresCdcSource, kafkaDebeziumSource, postgresTableImportSource, postgresQueryImportSource],
  destinations: [postgresTableDestination, kafkaTopicDestination, webhookDestination, jsonlFileDestination],
};

/** A registry holding the built-in components; plugins register into it. */
export function builtinComponents(): ComponentRegistry {
  return new ComponentRegistry().register(BUILTIN_COMPONENTS);
}
