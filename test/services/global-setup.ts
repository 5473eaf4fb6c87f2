// Vitest global setup: starts the test services for the whole run (or uses PG_URL / KAFKA_BROKERS
// when set), hands their addresses to tests through `inject`, and stops them at the end. A service
// that cannot start fails the run with the reason; no test is skipped for it.
//
// The services project runs SERVICE_WORKERS test files at once (vitest.config.ts). Each worker gets a
// Postgres and a Kafka of its own, so files running side by side never share a replication slot, a
// topic or a consumer group name; a test reads its worker's through test/services/use.ts.
import type { TestProject } from "vitest/node";
import { startKafka, type KafkaService } from "./kafka.js";
import { startPostgres, type PostgresService } from "./postgres.js";

export interface WorkerServices {
  pgUrl: string;
  kafkaBrokers: string[];
}

declare module "vitest" {
  export interface ProvidedContext {
    /** One entry per worker of the services project, indexed by VITEST_POOL_ID - 1. */
    services: WorkerServices[];
  }
}

async function timed<T>(label: string, start: () => Promise<T>, describe: (service: T) => string): Promise<T> {
  const began = performance.now();
  const service = await start();
  console.log(`[services] ${label} ready in ${((performance.now() - began) / 1000).toFixed(1)} s: ${describe(service)}`);
  return service;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const began = performance.now();
  const workers = typeof project.config.maxWorkers === "number" && project.config.maxWorkers > 0 ? project.config.maxWorkers : 1;
  const starts: Promise<PostgresService | KafkaService | undefined>[] = [];
  const pgs: Promise<PostgresService | undefined>[] = [];
  const kafkas: Promise<KafkaService | undefined>[] = [];
  for (let worker = 1; worker <= workers; worker += 1) {
    const label = workers > 1 ? ` ${worker}` : "";
    const pg = process.env.PG_URL ? Promise.resolve(undefined) : timed(`Postgres${label}`, startPostgres, (s) => `${s.url} (binaries: ${s.binaries.origin})`);
    const kafka = process.env.KAFKA_BROKERS ? Promise.resolve(undefined) : timed(`Kafka${label}`, () => startKafka(), (s) => s.brokers.join(","));
    pgs.push(pg);
    kafkas.push(kafka);
    starts.push(pg, kafka);
  }

  const results = await Promise.allSettled(starts);
  const started = results.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
  if (failures.length > 0) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw new Error(`test services failed to start:\n${failures.map((e) => e.message).join("\n\n")}`);
  }
  const services: WorkerServices[] = [];
  for (let i = 0; i < workers; i += 1) {
    const pgService = await pgs[i];
    const kafkaService = await kafkas[i];
    services.push({
      pgUrl: process.env.PG_URL || pgService?.url || "",
      kafkaBrokers: process.env.KAFKA_BROKERS?.split(",").map((b) => b.trim()) ?? kafkaService?.brokers ?? [],
    });
  }
  if (process.env.PG_URL) console.log(`[services] Postgres from PG_URL`);
  if (process.env.KAFKA_BROKERS) console.log(`[services] Kafka from KAFKA_BROKERS: ${process.env.KAFKA_BROKERS}`);
  console.log(`[services] all services ready in ${((performance.now() - began) / 1000).toFixed(1)} s (${workers} worker${workers > 1 ? "s" : ""})`);

  project.provide("services", services);

  return async () => {
    await Promise.allSettled(started.map((s) => s.stop()));
  };
}
