// A real single-node Apache Kafka broker for tests, in KRaft combined mode (broker + controller),
// from the org.apache.kafka:kafka_2.13 jars resolved by kafka/resolve.sh, on free loopback ports
// with a fresh log directory. Stopped by the process id this harness started.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { ServiceStartError, freePort, logTail, runCommand, waitForPort } from "./process.js";

const here = dirname(fileURLToPath(import.meta.url));

export interface KafkaService {
  brokers: string[];
  /** Stops the broker process (SIGTERM) and starts it again on the same ports and log directory. */
  restart(): Promise<void>;
  /** Stops the broker process in its tracks (SIGSTOP): it holds its connections and answers nothing, as a hung broker. */
  freeze(): void;
  /** Lets a frozen broker go on (SIGCONT). */
  thaw(): void;
  stop(): Promise<void>;
}

export interface KafkaPorts {
  broker: number;
  controller: number;
}

/** The broker's server.properties for single-node KRaft on loopback. */
export function kafkaServerProperties(ports: KafkaPorts, logDir: string): string {
  const settings: Record<string, string | number> = {
    "process.roles": "broker,controller",
    "node.id": 1,
    "controller.quorum.voters": `1@127.0.0.1:${ports.controller}`,
    listeners: `PLAINTEXT://127.0.0.1:${ports.broker},CONTROLLER://127.0.0.1:${ports.controller}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${ports.broker}`,
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "log.dirs": logDir,
    "num.partitions": 1,
    "auto.create.topics.enable": "true",
    "offsets.topic.replication.factor": 1,
    // One partition for the consumer-offsets topic: consumer groups form in well under a second.
    "offsets.topic.num.partitions": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.state.log.num.partitions": 1,
    "group.initial.rebalance.delay.ms": 0,
    // Lets tests use short consumer session timeouts, so a killed consumer's partitions move quickly.
    "group.min.session.timeout.ms": 1000,
    "share.coordinator.state.topic.replication.factor": 1,
  };
  return Object.entries(settings).map(([key, value]) => `${key}=${value}`).join("\n") + "\n";
}

const LOG4J = [
  "log4j.rootLogger=WARN, stdout",
  "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
  "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
  "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
  "log4j.logger.kafka.server.KafkaServer=INFO",
  "log4j.logger.kafka.server.BrokerServer=INFO",
  "",
].join("\n");

export async function resolveKafkaLibs(): Promise<string> {
  const result = await runCommand("bash", [join(here, "kafka", "resolve.sh")]);
  if (result.code !== 0) throw new ServiceStartError("Kafka", `resolving the broker jars with Maven failed:\n${result.output}`);
  const lines = result.stdout.trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

function java(): string {
  return process.env.JAVA_HOME ? join(process.env.JAVA_HOME, "bin", "java") : "java";
}

export async function startKafka(timeoutMs = 90_000): Promise<KafkaService> {
  const libs = await resolveKafkaLibs();
  const base = mkdtempSync(join(tmpdir(), "grouparoo-stream-kafka-"));
  const logFile = join(base, "broker.log");
  const fail = (reason: string) => new ServiceStartError("Kafka", `${reason}\n--- ${logFile} ---\n${logTail(logFile)}`);
  let child: ChildProcess | undefined;
  const stopProcess = async () => {
    const running = child;
    child = undefined;
    if (running && running.exitCode === null && running.signalCode === null) {
      // A frozen broker (freeze) takes no SIGTERM until it goes on.
      running.kill("SIGCONT");
      const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
      running.kill("SIGTERM");
      const timer = setTimeout(() => running.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const stop = async () => {
    await stopProcess();
    rmSync(base, { recursive: true, force: true });
  };

  try {
    const ports: KafkaPorts = { broker: await freePort(), controller: await freePort() };
    const propertiesFile = join(base, "server.properties");
    writeFileSync(propertiesFile, kafkaServerProperties(ports, join(base, "logs")));
    writeFileSync(join(base, "log4j.properties"), LOG4J);
    const jvm = [
      "-Xms256m",
      "-Xmx768m",
      "-XX:+UseSerialGC",
      "-XX:TieredStopAtLevel=1",
      "-Djava.awt.headless=true",
      `-Dlog4j.configuration=file:${join(base, "log4j.properties")}`,
      `-Dkafka.logs.dir=${base}`,
      "-cp",
      `${libs}/*`,
    ];
    // KRaft needs its log directory formatted with a cluster id before the first start.
    // Like Kafka's Uuid.randomUuid(): 16 random bytes in base64url, never starting with "-" (the
    // tool's argument parser would read such an id as an option; one start in 64 failed on it).
    let clusterId = randomBytes(16).toString("base64url");
    while (clusterId.startsWith("-")) clusterId = randomBytes(16).toString("base64url");
    const format = await runCommand(java(), [...jvm, "kafka.tools.StorageTool", "format", `--cluster-id=${clusterId}`, "-c", propertiesFile]);
    if (format.code !== 0) throw fail(`formatting the log directory failed (exit ${format.code}):\n${format.output}`);

    const brokers = [`127.0.0.1:${ports.broker}`];
    const launch = async () => {
      const out = openSync(logFile, "a");
      child = spawn(java(), [...jvm, "kafka.Kafka", propertiesFile], { cwd: base, stdio: ["ignore", out, out] });
      closeSync(out);
      const started = child;
      const spawnError = new Promise<never>((_, reject) => started.once("error", (error) => reject(fail(`java did not start: ${error.message}`))));
      const alive = () => started.exitCode === null && started.signalCode === null;
      await Promise.race([spawnError, waitForPort("127.0.0.1", ports.broker, timeoutMs, alive)]).catch((error: Error) => {
        throw error instanceof ServiceStartError ? error : fail(error.message);
      });
      await waitForBrokerReady(brokers, timeoutMs).catch((error: Error) => {
        throw fail(`the broker did not become ready: ${error.message}`);
      });
    };
    await launch();
    return {
      brokers,
      stop,
      async restart() {
        await stopProcess();
        await launch();
      },
      freeze() {
        child?.kill("SIGSTOP");
      },
      thaw() {
        child?.kill("SIGCONT");
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Waits until the broker answers metadata requests and can create a topic. */
async function waitForBrokerReady(brokers: string[], timeoutMs: number): Promise<void> {
  const kafka = new Kafka({ clientId: "test-harness", brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const admin = kafka.admin();
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: "__harness_ready", numPartitions: 1 }], waitForLeaders: true });
      await admin.disconnect();
      return;
    } catch (error) {
      lastError = error;
      await admin.disconnect().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`no answer within ${timeoutMs} ms (last error: ${String(lastError)})`);
}
