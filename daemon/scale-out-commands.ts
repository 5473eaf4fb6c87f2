// The `relay` and `worker` commands (README, "Relay and workers"), kept apart from cli.ts so the
// commands of one machine and those of many change independently.
import type { Command } from "commander";
import { DEFAULT_PIPELINE_OPTIONS } from "../streams/pipeline.js";
import { createLogger } from "./logger.js";
import { runRelay } from "./relay.js";
import { runWorker } from "./worker.js";

const collect = (value: string, previous: string[]) => [...previous, value];

export function scaleOutCommands(program: Command): void {
  program
    .command("relay")
    .description("read the partitioned models' postgres-cdc sources and publish their changes to Kafka, keyed by record (the slot is confirmed once the broker acknowledged them)")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .requiredOption("-s, --state <dir>", "directory of the relay's small state (rows' partitions, positions)")
    .option("--http <host:port>", "where /metrics, /healthz and /readyz listen", "127.0.0.1:9464")
    .option("--max-batch-size <n>", "most changes per published batch", (v) => Number(v), DEFAULT_PIPELINE_OPTIONS.maxBatchSize)
    .option("--max-batch-delay-ms <ms>", "longest a change waits for its batch while idle", (v) => Number(v), DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs)
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .action(async (options: { config: string; state: string; http: string; maxBatchSize: number; maxBatchDelayMs: number; plugin: string[] }) => {
      process.exit(await runRelay({ ...options, plugins: options.plugin }, createLogger()));
    });

  program
    .command("worker")
    .description("share the partitioned models with the other workers of the model's consumer group: own some partitions, restore their state from the changelog, deliver their records' exports")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .requiredOption("-s, --state <dir>", "directory of the local copies of the owned partitions' state")
    .option("--http <host:port>", "where /metrics, /healthz and /readyz listen", "127.0.0.1:9464")
    .option("--max-batch-size <n>", "most changes per batch (one LMDB transaction and one Kafka transaction)", (v) => Number(v), DEFAULT_PIPELINE_OPTIONS.maxBatchSize)
    .option("--max-batch-delay-ms <ms>", "longest a change waits for its batch while the partition is idle", (v) => Number(v), DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs)
    .option("--drain-timeout-ms <ms>", "how long SIGTERM keeps delivering the outbox", (v) => Number(v), 10_000)
    .option("--outbox-bound <n>", "exports waiting per destination and partition above which the partition pauses", (v) => Number(v), 100_000)
    .option("--delivery-batch-size <n>", "exports per delivery request", (v) => Number(v), 100)
    .option("--delivery-concurrency <n>", "delivery requests in flight per destination and partition", (v) => Number(v), 2)
    .option("--max-attempts <n>", "deliveries of an export before it is dead-lettered", (v) => Number(v), 10)
    .option("--max-backoff-ms <ms>", "longest wait between two attempts of an export", (v) => Number(v), 60_000)
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .action(
      async (options: {
        config: string;
        state: string;
        http: string;
        maxBatchSize: number;
        maxBatchDelayMs: number;
        drainTimeoutMs: number;
        outboxBound: number;
        deliveryBatchSize: number;
        deliveryConcurrency: number;
        maxAttempts: number;
        maxBackoffMs: number;
        plugin: string[];
      }) => {
        const code = await runWorker(
          {
            ...options,
            plugins: options.plugin,
            delivery: { batchSize: options.deliveryBatchSize, concurrency: options.deliveryConcurrency, maxAttempts: options.maxAttempts, maxBackoffMs: options.maxBackoffMs },
          },
          createLogger(),
        );
        process.exit(code);
      },
    );
}
