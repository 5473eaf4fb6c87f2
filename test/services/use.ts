// The test services of the worker running this file (test/services/global-setup.ts starts one
// Postgres and one Kafka per worker of the services project).
import { inject } from "vitest";
import type { WorkerServices } from "./global-setup.js";

function mine(): WorkerServices {
  const services = inject("services");
  const pool = Number(process.env.VITEST_POOL_ID ?? "1");
  const found = services[pool - 1];
  if (!found) throw new Error(`no test services for VITEST_POOL_ID ${process.env.VITEST_POOL_ID} (${services.length} started)`);
  return found;
}

/** The superuser connection string of this worker's Postgres. */
export const testPgUrl = (): string => mine().pgUrl;

/** The bootstrap brokers of this worker's Kafka. */
export const testKafkaBrokers = (): string[] => mine().kafkaBrokers;
