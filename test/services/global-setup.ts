// Vitest global setup: starts one Postgres and one Kafka for the whole test run (or uses PG_URL /
// KAFKA_BROKERS when set), hands their addresses to tests through `inject`, and stops them at the
// end. A service that cannot start fails the run with the reason; no test is skipped for it.
import type { TestProject } from "vitest/node";
import { startKafka, type KafkaService } from "./kafka.js";
import { startPostgres, type PostgresService } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string;
    kafkaBrokers: string[];
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
  const pg = process.env.PG_URL
    ? Promise.resolve<PostgresService | undefined>(undefined)
    : timed("Postgres", startPostgres, (s) => `${s.url} (binaries: ${s.binaries.origin})`);
  const kafka = process.env.KAFKA_BROKERS
    ? Promise.resolve<KafkaService | undefined>(undefined)
    : timed("Kafka", () => startKafka(), (s) => s.brokers.join(","));

  const [pgResult, kafkaResult] = await Promise.allSettled([pg, kafka]);
  const started = [pgResult, kafkaResult].flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
  const failures = [pgResult, kafkaResult].flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
  if (failures.length > 0) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw new Error(`test services failed to start:\n${failures.map((e) => e.message).join("\n\n")}`);
  }
  const pgService = pgResult.status === "fulfilled" ? pgResult.value : undefined;
  const kafkaService = kafkaResult.status === "fulfilled" ? kafkaResult.value : undefined;
  const pgUrl = process.env.PG_URL || pgService?.url || "";
  const kafkaBrokers = process.env.KAFKA_BROKERS?.split(",").map((b) => b.trim()) ?? kafkaService?.brokers ?? [];
  if (process.env.PG_URL) console.log(`[services] Postgres from PG_URL`);
  if (process.env.KAFKA_BROKERS) console.log(`[services] Kafka from KAFKA_BROKERS: ${kafkaBrokers.join(",")}`);
  console.log(`[services] all services ready in ${((performance.now() - began) / 1000).toFixed(1)} s`);

  project.provide("pgUrl", pgUrl);
  project.provide("kafkaBrokers", kafkaBrokers);

  return async () => {
    await Promise.allSettled(started.map((s) => s.stop()));
  };
}
