// Runs the postgres-cdc connector, the pipeline and the LMDB state in-process against a real
// Postgres database, with a gate that can hold commits back (to watch what the slot is told).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { postgresCdcSource } from "../../connectors/postgres/cdc/index.js";
import type { SourceConnector, SourceComponent } from "../../connectors/types.js";
import type { Config } from "../../core/config/types.js";
import { validateObjects } from "../../daemon/config/validate.js";
import { Store } from "../../state/store.js";
import { compileDomain, type Domain } from "../../core/domain.js";
import { flowIntoState } from "../../streams/flow.js";
import { asRaw } from "./config.js";

export interface CdcRun {
  store: Store;
  domain: Domain;
  config: Config;
  connector: SourceConnector;
  /** Changes the connector has emitted so far (applied, buffered or waiting at the gate). */
  received(): number;
  /** The last consumer lag the source reported, by "topic/partition". */
  lag: Map<string, number>;
  /** Resolves with the error that stopped the pipeline, if one does. */
  failure: Promise<Error>;
  hold(): void;
  release(): void;
  /** Stops everything; the state directory is removed unless `keepState`. */
  stop(options?: { keepState?: boolean }): Promise<void>;
}

export function validConfig(objects: Record<string, unknown>[]): Config {
  const result = validateObjects(asRaw(objects));
  if (!result.config) throw new Error(`invalid test config: ${JSON.stringify(result.issues, null, 2)}`);
  return result.config;
}

export function startCdc(config: Config, stateDir?: string): CdcRun {
  return startSource(config, postgresCdcSource, stateDir);
}

/** Runs one source plugin (for the config's first app of its type) with the pipeline and the state. */
export function startSource(config: Config, plugin: SourceComponent, stateDir = mkdtempSync(join(tmpdir(), "source-state-"))): CdcRun {
  const domain = compileDomain(config);
  const store = Store.open(stateDir);
  const lag = new Map<string, number>();
  const app = config.apps.find((a) => a.type === plugin.appType);
  if (!app) throw new Error(`no ${plugin.appType} app`);
  const connector = plugin.create(
    app,
    config.sources.filter((s) => s.appId === app.id),
    {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
      positions: store.allPositions(),
      observer: { consumerLag: (topic, partition, value) => lag.set(`${topic}/${partition}`, value) },
      schedules: config.schedules,
    },
  );
  let gate: Promise<void> | undefined;
  let open: () => void = () => undefined;
  let received = 0;
  let fail: (error: Error) => void = () => undefined;
  const failure = new Promise<Error>((resolve) => (fail = resolve));
  const { pipeline, done: running } = flowIntoState(
    [connector],
    store,
    domain,
    { received: () => void (received += 1), failed: (error) => fail(error) },
    { beforeApply: () => gate },
  );
  const done = running.catch(() => undefined);
  return {
    store,
    domain,
    config,
    connector,
    received: () => received,
    lag,
    failure,
    hold: () => {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    release: () => {
      gate = undefined;
      open();
    },
    async stop(options: { keepState?: boolean } = {}) {
      gate = undefined;
      open();
      pipeline.drain();
      await connector.stop();
      await done;
      await store.close();
      if (!options.keepState) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
