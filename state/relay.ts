// The relay's own small state (README, "Relay and workers"): where each row of a partitioned model's
// non-primary sources was last sent (deletes carry only the row's key), and the positions of the
// streams it relays, written together once the batch's events are acknowledged by the broker.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { open, type Database, type RootDatabase } from "lmdb";
import { KEY_END, MAP_SIZE, RELAY_MARKER } from "./open.js";

type Key = [string, string];
const END = KEY_END;

export interface StoredRoute {
  route: string;
  /** The snapshot that read the row, if a snapshot did. */
  snapshot?: string;
}

export class RelayState {
  private readonly root: RootDatabase;
  private readonly routes: Database<StoredRoute, Key>;
  private readonly positions: Database<string, string>;

  private constructor(readonly path: string) {
    mkdirSync(path, { recursive: true });
    // Marked, so that a daemon's command pointed here refuses it instead of writing its own layout in.
    const marker = join(path, RELAY_MARKER);
    if (!existsSync(marker)) writeFileSync(marker, "the state of a grouparoo-stream relay: only `grouparoo-stream relay` opens it\n");
    this.root = open({ path, noSubdir: false, noSync: false, useWritemap: false, overlappingSync: false, maxDbs: 4, cache: false, mapSize: MAP_SIZE });
    this.routes = this.root.openDB<StoredRoute, Key>({ name: "routes" });
    this.positions = this.root.openDB<string, string>({ name: "positions" });
  }

  static open(path: string): RelayState {
    return new RelayState(path);
  }

  route(sourceId: string, rowKey: string): StoredRoute | undefined {
    return this.routes.get([sourceId, rowKey]);
  }

  /** The routes of a source, in row key order. */
  *routesOf(sourceId: string): Generator<[string, StoredRoute]> {
    for (const { key, value } of this.routes.getRange({ start: [sourceId, ""], end: [sourceId, END] })) yield [String(key[1]), value];
  }

  routeCount(): number {
    return this.routes.getCount();
  }

  allPositions(): Map<string, string> {
    return new Map([...this.positions.getRange()].map(({ key, value }) => [key, value]));
  }

  /** Writes the routes a batch changed (null: dropped) and its positions in one durable transaction. */
  async commit(routes: ReadonlyMap<string, { sourceId: string; rowKey: string; value: StoredRoute | null }>, positions: ReadonlyMap<string, string>): Promise<void> {
    await this.root.transaction(() => {
      for (const { sourceId, rowKey, value } of routes.values()) {
        if (value === null) void this.routes.remove([sourceId, rowKey]);
        else void this.routes.put([sourceId, rowKey], value);
      }
      for (const [stream, position] of positions) void this.positions.put(stream, position);
    });
    await this.root.flushed;
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
