// Creating the connectors a config names, through the component registry: one source connector per
// app and connector kind (all postgres-cdc sources of an app share one slot), one destination
// connector per destination, with the property type behind each of its remote fields.
import type { Logger } from "pino";
import type { Config } from "../core/config/types.js";
import type { ComponentRegistry } from "../connectors/registry.js";
import type { DeliveryTuning, DestinationConnector, SourceConnector, SourceContext, SourceObserver } from "../connectors/types.js";

/** A component that cannot be created names itself in the error (its `create` threw: a plugin's, say). */
function named<T>(what: string, create: () => T): T {
  try {
    return create();
  } catch (error) {
    throw new Error(`${what} cannot be created: ${(error as Error).message}`, { cause: error });
  }
}

export interface CreatedSources {
  connectors: SourceConnector[];
  /** The connector reading each source. */
  bySource: Map<string, SourceConnector>;
}

export function createSources(
  config: Config,
  registry: ComponentRegistry,
  positions: ReadonlyMap<string, string>,
  logger: Logger,
  observer: SourceObserver,
  runs: Pick<SourceContext, "rereading" | "requestReread"> = {},
): CreatedSources {
  const groups = new Map<string, { appId: string; sources: Config["sources"] }>();
  for (const source of config.sources) {
    const component = registry.sources.get(source.type);
    if (!component) throw new Error(`${source.origin.file}: source "${source.id}": type: no component for ${source.type} sources in this build`);
    const key = `${source.appId}\u0000${component.connector ?? component.type}`;
    const group = groups.get(key) ?? { appId: source.appId, sources: [] };
    group.sources.push(source);
    groups.set(key, group);
  }
  const connectors: SourceConnector[] = [];
  const bySource = new Map<string, SourceConnector>();
  for (const { appId, sources } of groups.values()) {
    const app = config.apps.find((a) => a.id === appId);
    const component = registry.sources.get(sources[0]?.type ?? "");
    if (!app || !component) continue;
    const ids = new Set(sources.map((s) => s.id));
    const connector = named(`${app.origin.file}: app "${appId}" (sources ${[...ids].join(", ")})`, () =>
      component.create(app, sources, {
        logger: logger.child({ app: appId }),
        positions,
        observer,
        properties: config.properties.filter((p) => ids.has(p.sourceId)),
        schedules: config.schedules.filter((s) => ids.has(s.sourceId)),
        ...(runs.rereading?.some((r) => r.sourceIds.some((id) => ids.has(id))) ? { rereading: runs.rereading } : {}),
        ...(runs.requestReread ? { requestReread: runs.requestReread } : {}),
      }),
    );
    connectors.push(connector);
    for (const id of ids) bySource.set(id, connector);
  }
  return { connectors, bySource };
}

/** Whether a source would miss its system's existing rows unless read again (its component decides). */
export function needsReread(config: Config, registry: ComponentRegistry, positions: ReadonlyMap<string, string>, sourceId: string): boolean {
  const source = config.sources.find((s) => s.id === sourceId);
  const app = source && config.apps.find((a) => a.id === source.appId);
  if (!source || !app) return false;
  return registry.sources.get(source.type)?.needsReread?.(source, app, positions) ?? false;
}

export interface CreatedDestination {
  connector: DestinationConnector;
  /** Delivery settings the destination's own options set. */
  tuning: DeliveryTuning;
}

export function createDestinations(config: Config, registry: ComponentRegistry, logger: Logger): CreatedDestination[] {
  const created: CreatedDestination[] = [];
  const types = new Map(config.properties.map((p) => [p.id, p.type]));
  for (const destination of config.destinations) {
    const app = config.apps.find((a) => a.id === destination.appId);
    const component = registry.destinations.get(destination.type);
    if (!app) continue;
    if (!component) throw new Error(`${destination.origin.file}: destination "${destination.id}": type: no component for ${destination.type} destinations in this build`);
    const fieldTypes = Object.fromEntries(
      Object.entries(destination.mapping).flatMap(([remote, propertyId]) => {
        const type = types.get(propertyId);
        return type ? [[remote, type]] : [];
      }),
    );
    created.push({
      connector: named(`${destination.origin.file}: destination "${destination.id}"`, () => component.create(destination, app, { logger: logger.child({ destination: destination.id }), fieldTypes })),
      tuning: component.delivery?.(destination) ?? {},
    });
  }
  return created;
}
