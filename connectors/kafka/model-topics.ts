// The topics of a partitioned model (README, "Relay and workers"): created when missing, with the
// partitions and replication factor the model's config asks for; the changelog compacted. A topic that
// exists with another partition count is an error naming both: records would move between partitions.
import type { Admin } from "kafkajs";
import type { ModelTopics } from "../../core/partitions.js";
import { kafkajs } from "./app.js";

export class TopicLayoutError extends Error {
  readonly code = "TOPIC_LAYOUT";
}

/** The max.message.bytes the model topic and its changelog are created with. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Creates the topic (and, with `changelog`, the changelog) when missing; returns the partition count. */
export async function ensureModelTopics(admin: Admin, topics: ModelTopics, changelog: boolean): Promise<number> {
  const wanted = [
    // A row as large as the changelog takes is published whole (the broker's default is 1 MiB; the
    // relay's requests stay below that, but for one event larger alone).
    { topic: topics.topic, numPartitions: topics.partitions, replicationFactor: topics.replicationFactor, configEntries: [{ name: "max.message.bytes", value: String(MAX_MESSAGE_BYTES) }] },
    ...(changelog
      ? [
          {
            topic: topics.changelogTopic,
            numPartitions: topics.partitions,
            replicationFactor: topics.replicationFactor,
            configEntries: [
              { name: "cleanup.policy", value: "compact" },
              { name: "max.message.bytes", value: String(MAX_MESSAGE_BYTES) },
            ],
          },
        ]
      : []),
  ];
  const existing = new Set(await admin.listTopics());
  const missing = wanted.filter((t) => !existing.has(t.topic));
  if (missing.length > 0) {
    try {
      await admin.createTopics({ topics: missing, waitForLeaders: true });
    } catch (error) {
      // Another relay or worker may have created it meanwhile.
      if (!/already exists/i.test((error as Error).message)) throw error;
    }
  }
  const metadata = await settledMetadata(admin, wanted.map((t) => t.topic));
  const counts = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
  const count = counts.get(topics.topic) ?? 0;
  if (changelog && counts.get(topics.changelogTopic) !== count) {
    throw new TopicLayoutError(`model "${topics.modelId}": topic ${topics.topic} has ${count} partitions and its changelog ${topics.changelogTopic} ${counts.get(topics.changelogTopic) ?? 0}; they must have the same count`);
  }
  if (count !== topics.partitions) {
    throw new TopicLayoutError(`model "${topics.modelId}": topic ${topics.topic} has ${count} partitions, the config says ${topics.partitions}; records would move between partitions (re-create the topics, or set partitioned.partitions to ${count})`);
  }
  await checkTopicPolicy(admin, topics);
  if (changelog) await checkChangelogRetention(admin, topics);
  return count;
}

/** Some of a topic's configs, or undefined when the cluster does not let us read them (DescribeConfigs). */
async function topicConfigs(admin: Admin, topic: string, names: string[]): Promise<Map<string, string> | undefined> {
  try {
    const { ConfigResourceTypes } = kafkajs();
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: names }] });
    return new Map((described.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]));
  } catch {
    return undefined;
  }
}

/**
 * A model topic made beforehand with cleanup.policy compact: the broker refuses the relay's events
 * that have no key (a truncate, the end of a snapshot, which go to every partition), so the relay
 * would stop at every start on the first of them with the broker's "failed the validation" message.
 * Refused up front, naming the topic and the fix. Not checked when the configs cannot be read.
 */
async function checkTopicPolicy(admin: Admin, topics: ModelTopics): Promise<void> {
  const entries = await topicConfigs(admin, topics.topic, ["cleanup.policy"]);
  const policy = (entries?.get("cleanup.policy") ?? "delete").split(",").map((p) => p.trim());
  if (!policy.includes("compact")) return;
  throw new TopicLayoutError(
    `model "${topics.modelId}": topic ${topics.topic} has cleanup.policy=${policy.join(",")}: Kafka refuses the relay's events without a key there (truncates, the ends of snapshots); make it cleanup.policy=delete (kafka-configs --alter --entity-type topics --entity-name ${topics.topic} --add-config cleanup.policy=delete) with a retention the workers keep up with, or delete it for the relay to create it`,
  );
}

/**
 * A changelog made beforehand (by hand, by Terraform) with the cluster's default cleanup.policy,
 * delete, loses each state key's last write once it is older than retention.ms (a week by default):
 * a restore would then miss every record that had not changed since, without a word. Refused unless
 * it is compacted only, or keeps everything (retention.ms and retention.bytes -1). A cluster that does
 * not let the worker read topic configs (DescribeConfigs) is not checked.
 */
async function checkChangelogRetention(admin: Admin, topics: ModelTopics): Promise<void> {
  const entries = await topicConfigs(admin, topics.changelogTopic, ["cleanup.policy", "retention.ms", "retention.bytes"]);
  if (!entries) return;
  const policy = (entries.get("cleanup.policy") ?? "delete").split(",").map((p) => p.trim());
  if (!policy.includes("delete")) return;
  const ms = entries.get("retention.ms") ?? "604800000";
  const bytes = entries.get("retention.bytes") ?? "-1";
  if (ms === "-1" && bytes === "-1") return;
  throw new TopicLayoutError(
    `model "${topics.modelId}": changelog ${topics.changelogTopic} has cleanup.policy=${policy.join(",")} with retention.ms=${ms} and retention.bytes=${bytes}: Kafka would delete partition states' records past that retention, and a restore would miss every record that had not changed since; make it compacted (kafka-configs --alter --entity-type topics --entity-name ${topics.changelogTopic} --add-config cleanup.policy=compact) or delete it for the workers to create it`,
  );
}

/**
 * The topics' metadata once every partition has a leader: a topic another relay or worker has just
 * created answers "does not host this topic-partition" or has no leaders for a moment. Retriable
 * errors are retried for up to 30 s; others, and the last one, are thrown.
 */
async function settledMetadata(admin: Admin, topics: string[]): ReturnType<Admin["fetchTopicMetadata"]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics });
      const settled = metadata.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
      if (settled || Date.now() > deadline) return metadata;
    } catch (error) {
      if (!(error as { retriable?: boolean }).retriable || Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
