// The `relay` and `worker` commands (README, "Relay and workers"), kept apart from program.ts so the
// commands of one machine and those of many change independently.
import type { Command } from "commander";
import { DEFAULT_PIPELINE_OPTIONS } from "../streams/pipeline.js";
import { deliveryFlags, environmentProblems, hostPort, integer, milliseconds, path, refuseUsage } from "./flags.js";
import { createLogger } from "./logger.js";

const collect = (value: string, previous: string[]) => [...previous, value];

/** LOG_LEVEL and LOG_FORMAT are checked before anything starts, as for `run`. */
const checkEnvironment = () => refuseUsage(environmentProblems(process.env));

export function scaleOutCommands(program: Command): void {
  program
    .command("relay")
    .description("read the partitioned models' postgres-cdc sources and publish their changes to Kafka, keyed by record (the slot is confirmed once the broker acknowledged them)")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .requiredOption("-s, --state <dir>", "directory of the relay's small state (rows' partitions, positions; one relay per state)", path)
    .option("--http <host:port>", "where /metrics, /healthz and /readyz listen", hostPort, "127.0.0.1:9464")
    .option("--max-batch-size <n>", "most changes per published batch, 1 or more", integer(1), DEFAULT_PIPELINE_OPTIONS.maxBatchSize)
    .option("--max-batch-delay-ms <ms>", "longest a change waits for its batch while idle", milliseconds(0), DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs)
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .hook("preAction", checkEnvironment)
    .action(async (options: { config: string; state: string; http: string; maxBatchSize: number; maxBatchDelayMs: number; plugin: string[] }) => {
      process.exit(await (await import("./relay.js")).runRelay({ ...options, plugins: options.plugin }, createLogger()));
    });

  const worker = program
    .command("worker")
    .description("share the partitioned models with the other workers of the model's consumer group: own some partitions, restore their state from the changelog, deliver their records' exports")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .requiredOption("-s, --state <dir>", "directory of the local copies of the owned partitions' state (one worker per state)", path)
    .option("--http <host:port>", "where /metrics, /healthz and /readyz listen", hostPort, "127.0.0.1:9464")
    .option("--max-batch-size <n>", "most changes per batch (one LMDB transaction and one Kafka transaction), 1 or more", integer(1), DEFAULT_PIPELINE_OPTIONS.maxBatchSize)
    .option("--max-batch-delay-ms <ms>", "longest a change waits for its batch while the partition is idle", milliseconds(0), DEFAULT_PIPELINE_OPTIONS.maxBatchDelayMs);
  deliveryFlags(worker, "destination and partition", "the partition pauses")
    .option("--plugin <package>", "load a plugin package (repeatable)", collect, [])
    .hook("preAction", checkEnvironment)
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
        const code = await (await import("./worker.js")).runWorker(
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
