// Beyond one machine (README, "Relay and workers"): what a partitioned model's topics are called, and
// what one write transaction of a partition's state looks like on its changelog. Pure.
import type { ModelConfig } from "./config/schema.js";

export interface ModelTopics {
  modelId: string;
  /** The kafka app of the cluster holding the topics (its groupId is the workers' consumer group). */
  appId: string;
  /** The model's changes, keyed by record. */
  topic: string;
  /** The workers' state, one partition per topic partition, compacted. */
  changelogTopic: string;
  partitions: number;
  replicationFactor: number;
}

/** The topics of a partitioned model, defaults filled in; undefined for a model that is not partitioned. */
export function modelTopics(model: Pick<ModelConfig, "id" | "partitioned">): ModelTopics | undefined {
  const p = model.partitioned;
  if (!p) return undefined;
  const topic = p.topic ?? `grouparoo.${model.id}.changes`;
  return { modelId: model.id, appId: p.appId, topic, changelogTopic: p.changelogTopic ?? `${topic}.changelog`, partitions: p.partitions ?? 12, replicationFactor: p.replicationFactor ?? 1 };
}

/** One entry of a partition's changelog: a state key and its value (null: removed), both encoded. */
export interface ChangelogRecord {
  key: Buffer;
  value: Buffer | null;
}

/** Everything one write transaction of a partition's state wrote, as its changelog records. */
export interface CapturedTransaction {
  /** A random id, also written into the state itself: a local copy is current when its id is the changelog's. */
  id: string;
  records: ChangelogRecord[];
  /** The stream positions the transaction stored (the input offsets it reflects). */
  positions: ReadonlyMap<string, string>;
  /** The last outbox sequence number it allotted per destination. */
  outboxSeqs: ReadonlyMap<string, number>;
}

/** The meta entry holding the id of the last transaction a state reflects. */
export const CHANGELOG_TXN_KEY = "changelog:txn";

/** The meta entry marking a worker's partition state: only its worker, which captures the changelog, writes it. */
export const PARTITION_STATE_KEY = "changelog:partition";
