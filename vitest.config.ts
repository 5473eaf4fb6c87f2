import { defineConfig } from "vitest/config";

// Two projects: unit tests run without any service (pure logic, fake timers); integration and e2e
// tests get real Postgres and Kafka for the whole run (test/services/global-setup.ts).
//
// The services project runs two files at a time by default, each worker on a Postgres and a Kafka of
// its own (test/services/global-setup.ts): on this 2-core machine a whole run took 1,826 s with two
// against 2,289 s with one (2026-12-03, `bash .ci/run` on a clean clone). TEST_WORKERS=1 runs one
// file at a time. Servers given through PG_URL / KAFKA_BROKERS are shared: with them, one file at a time.
const requested = Number(process.env.TEST_WORKERS ?? "2");
const SERVICE_WORKERS = process.env.PG_URL || process.env.KAFKA_BROKERS || !Number.isInteger(requested) || requested < 1 ? 1 : requested;

export default defineConfig({
  test: {
    reporters: ["default", "./test/services/summary-reporter.ts"],
    teardownTimeout: 60_000,
    // Both projects take the services' count: vitest runs projects of one group with one worker count.
    maxWorkers: SERVICE_WORKERS,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], pool: "threads", testTimeout: 30_000 },
      },
      {
        extends: true,
        test: {
          name: "services",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          globalSetup: ["test/services/global-setup.ts"],
          pool: "forks",
          testTimeout: 30_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
