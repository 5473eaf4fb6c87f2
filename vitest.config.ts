import { defineConfig } from "vitest/config";

// Two projects: unit tests run without any service (pure logic, fake timers); integration and e2e
// tests get one real Postgres and one real Kafka for the whole run (test/services/global-setup.ts).
export default defineConfig({
  test: {
    reporters: ["default", "./test/services/summary-reporter.ts"],
    teardownTimeout: 60_000,
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
