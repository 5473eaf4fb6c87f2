// Checks of partitioned models (README, "Relay and workers"): the relay routes every change of such a
// model by its record's primary key, so each worker owns whole records. That holds when the model's
// changes come through the relay (postgres-cdc sources), when every other source finds its record by
// the primary key (its rows then go to the partition their record is or will be in), and when no other
// unique value must be unique across partitions (no worker sees the others' values).
import { modelTopics } from "../../partitions.js";
import type { AppConfig, DestinationConfig, ModelConfig, PropertyConfig, SourceConfig } from "../schema.js";
import type { PrimaryKey } from "../types.js";
import type { Validation } from "../validation.js";

/** The source types the relay reads. */
export const RELAYED_SOURCE_TYPES: readonly string[] = ["postgres-cdc"];

export function checkPartitions(v: Validation, primaryKeys: Readonly<Record<string, PrimaryKey>>): void {
  checkTopics(v);
  for (const entry of v.valid("model")) {
    const model = entry.value as unknown as ModelConfig;
    const partitioned = model.partitioned;
    if (!partitioned) continue;
    if (v.ref(entry, ["partitioned", "appId"], partitioned.appId, "app")) {
      const app = v.get<AppConfig>("app", partitioned.appId);
      if (app && app.type !== "kafka") v.report(entry, ["partitioned", "appId"], `app "${partitioned.appId}" is a ${app.type} app; the model's topics need a kafka app`);
    }
    const key = primaryKeys[entry.id];
    for (const sourceEntry of v.valid("source")) {
      const source = sourceEntry.value as unknown as SourceConfig;
      if (source.modelId !== entry.id) continue;
      if (!RELAYED_SOURCE_TYPES.includes(source.type)) {
        v.report(sourceEntry, "type", `model "${entry.id}" is partitioned: its changes come through the relay, which reads ${RELAYED_SOURCE_TYPES.join(", ")} sources, not ${source.type}`);
        continue;
      }
      if (!key || source.id === key.sourceId) continue;
      for (const [column, propertyId] of Object.entries(source.mapping)) {
        if (propertyId === key.propertyId) continue;
        v.report(
          sourceEntry,
          ["mapping", column],
          `model "${entry.id}" is partitioned by its primary key "${key.propertyId}": a source other than its primary one must find its record by that key (this one maps "${propertyId}"); map a column holding "${key.propertyId}" instead, e.g. through a view joining the table to the record's key`,
        );
      }
    }
    if (!key) continue;
    for (const propertyEntry of v.valid("property")) {
      const property = propertyEntry.value as unknown as PropertyConfig;
      if (!property.unique || property.id === key.propertyId || v.modelOfProperty(property) !== entry.id) continue;
      v.report(
        propertyEntry,
        "unique",
        `model "${entry.id}" is partitioned: only its primary key "${key.propertyId}" can be unique (a worker cannot see the values other workers' records hold); make "${property.id}" not unique`,
      );
    }
  }
}

/**
 * Each partitioned model's topic and changelog are its own on their cluster: a changelog that is its
 * model's topic, or a topic two models share (as topic or changelog), mixes the relay's events and the
 * workers' state records (the workers read their own state writes back as undecodable changes, each a
 * dead letter written to the changelog again, without end; two models' partitions share a
 * transactional id and fence each other at every takeover); a kafka-topic destination of the cluster
 * writing into one of them does the same.
 */
function checkTopics(v: Validation): void {
  const owners = new Map<string, string>();
  const ownerOf = (appId: string, topic: string) => owners.get(`${appId}\u0000${topic}`);
  for (const entry of v.valid("model")) {
    const topics = modelTopics(entry.value as unknown as ModelConfig);
    if (!topics) continue;
    const roles = [
      { field: "topic", topic: topics.topic, role: "topic" },
      { field: "changelogTopic", topic: topics.changelogTopic, role: "changelog" },
    ];
    if (topics.topic === topics.changelogTopic) {
      v.report(entry, ["partitioned", "changelogTopic"], `the changelog must be another topic than the model's topic "${topics.topic}": the workers would read their own state records back as changes`);
      continue;
    }
    for (const { field, topic } of roles) {
      const owner = ownerOf(topics.appId, topic);
      if (owner !== undefined) v.report(entry, ["partitioned", field], `topic "${topic}" is already ${owner} on the cluster of app "${topics.appId}": each partitioned model needs a topic and a changelog of its own`);
    }
    for (const { topic, role } of roles) if (ownerOf(topics.appId, topic) === undefined) owners.set(`${topics.appId}\u0000${topic}`, `model "${entry.id}"'s ${role}`);
  }
  for (const entry of v.valid("destination")) {
    const destination = entry.value as unknown as DestinationConfig;
    if (destination.type !== "kafka-topic") continue;
    const topic = (destination.options as { topic?: unknown } | undefined)?.topic;
    const owner = typeof topic === "string" ? ownerOf(destination.appId, topic) : undefined;
    if (owner !== undefined) v.report(entry, ["options", "topic"], `topic "${String(topic)}" is ${owner} on the cluster of app "${destination.appId}": its workers would read the exports as changes; write to another topic`);
  }
}
