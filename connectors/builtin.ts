// The built-in connectors, registered by type. Plugins add theirs to the same registry.
import { jsonlFilePlugin } from "./file/jsonl.js";
import { kafkaDebeziumPlugin } from "./kafka/source.js";
import { kafkaTopicPlugin } from "./kafka/topic.js";
import { postgresCdcPlugin } from "./postgres/cdc.js";
import { postgresPollingPlugin } from "./postgres/poll.js";
import { postgresTablePlugin } from "./postgres/table.js";
import { ConnectorRegistry } from "./types.js";
import { webhookPlugin } from "./webhook/webhook.js";

export function builtinConnectors(): ConnectorRegistry {
  return new ConnectorRegistry()
    .registerSource(postgresCdcPlugin)
    .registerSource(postgresPollingPlugin)
    .registerSource(kafkaDebeziumPlugin)
    .registerDestination(postgresTablePlugin)
    .registerDestination(webhookPlugin)
    .registerDestination(kafkaTopicPlugin)
    .registerDestination(jsonlFilePlugin);
}
