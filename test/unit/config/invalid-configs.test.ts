// Each invalid config, one broken thing at a time, and the exact error it must produce: the file,
// the object (class and id), the field and the message.
import { describe, expect, it } from "vitest";
import { validateObjects } from "../../../daemon/config/validate.js";
import { asRaw, find, validConfigObjects } from "../../helpers/config.js";

type Obj = Record<string, unknown>;
interface Expected {
  objectClass: string;
  id: string;
  field: string;
  message: string;
}

const CLASSES = "app, model, source, property, group, destination, schedule, apiKey";
const STRING_OPS = "exists, notExists, eq, ne, like, notLike, iLike, notILike, startsWith, endsWith, substring";

function errorsOf(mutate: (objects: Obj[]) => void): Expected[] {
  const objects = validConfigObjects();
  mutate(objects);
  const result = validateObjects(asRaw(objects));
  for (const issue of result.issues) expect(issue.file).toBe("config.yml");
  return result.issues
    .filter((i) => i.severity === "error")
    .map(({ objectClass, id, field, message }) => ({ objectClass, id, field, message }));
}

const options = (objects: Obj[], id: string) => find(objects, id).options as Obj;
const rule0 = (objects: Obj[], id: string) => (find(objects, id).rules as Obj[])[0] as Obj;
const filter0 = (objects: Obj[]) => (find(objects, "lifetime_value").filters as Obj[])[0] as Obj;
const e = (objectClass: string, id: string, field: string, message: string): Expected => ({ objectClass, id, field, message });

const cases: [string, (o: Obj[]) => void, Expected[]][] = [
  // Class, id, shape
  ["unknown class", (o) => o.push({ class: "widget", id: "w" }), [e("widget", "w", "class", `unknown class "widget" (expected one of ${CLASSES})`)]],
  ["missing class", (o) => o.push({ id: "x" }), [e("", "x", "class", `is required (one of ${CLASSES})`)]],
  ["missing id", (o) => o.push({ class: "model" }), [e("model", "#19", "id", "is required")]],
  ["id with spaces", (o) => o.push({ class: "Model", id: "bad id" }), [e("model", "bad id", "id", 'may contain only letters, digits and _ . : - (got "bad id")')]],
  ["duplicate id in a class", (o) => o.push({ class: "model", id: "users" }), [e("model", "users", "id", "duplicate model id; also defined in config.yml (item 3)")]],
  ["the id __proto__", (o) => o.push({ class: "model", id: "__proto__" }), [e("model", "__proto__", "id", '"__proto__" is reserved: every JavaScript object has a member of that name, and the daemon keeps objects keyed by it; choose another id')]],
  ["the id constructor", (o) => o.push({ class: "group", id: "constructor", modelId: "users", rules: [{ propertyId: "email", op: "exists" }] }), [e("group", "constructor", "id", '"constructor" is reserved: every JavaScript object has a member of that name, and the daemon keeps objects keyed by it; choose another id')]],
  [
    "a mapping key toString, and one __proto__ (as JSON and YAML hold it: an own key)",
    (o) => {
      const crm = find(o, "crm");
      crm.mapping = Object.fromEntries([...Object.entries(crm.mapping as Obj), ["toString", "email"], ["__proto__", "email"]]);
    },
    [
      e("destination", "crm", "mapping.toString", '"toString" is reserved: every JavaScript object has a member of that name, and the daemon keeps objects keyed by it; choose another name'),
      e("destination", "crm", "mapping.__proto__", '"__proto__" is reserved: every JavaScript object has a member of that name, and the daemon keeps objects keyed by it; choose another name'),
    ],
  ],
  ["unknown field", (o) => (find(o, "users").colour = "red"), [e("model", "users", "colour", "is not a known field")]],
  // Apps
  ["unknown app type", (o) => (find(o, "bus").type = "rabbitmq"), [e("app", "bus", "type", 'must be one of postgres, kafka, webhook, file (got "rabbitmq")')]],
  ["unknown postgres option", (o) => (options(o, "shop_db").hostname = "db"), [e("app", "shop_db", "options.hostname", "is not a known field")]],
  [
    "postgres port out of range",
    (o) => (find(o, "shop_db").options = { host: "db", port: 70000, database: "shop" }),
    [e("app", "shop_db", "options.port", "must be at most 65535 (got 70000)")],
  ],
  ["connectionString and host", (o) => (options(o, "shop_db").host = "db"), [e("app", "shop_db", "options.connectionString", "give either connectionString or host, not both")]],
  [
    "postgres app without a database",
    (o) => (find(o, "shop_db").options = { slot: "s" }),
    [e("app", "shop_db", "options", "needs connectionString, or database (with host, port, user, password), or options.debezium with database.dbname")],
  ],
  ["invalid slot name", (o) => (options(o, "shop_db").slot = "Shop-Slot"), [e("app", "shop_db", "options.slot", 'does not match ^[a-z_][a-z0-9_]{0,62}$ (got "Shop-Slot")')]],
  ["kafka app without brokers", (o) => (find(o, "bus").options = {}), [e("app", "bus", "options.brokers", "is required")]],
  ["webhook url not http", (o) => (options(o, "hooks").url = "ftp://hooks"), [e("app", "hooks", "options.url", 'does not match ^https?:// (got "ftp://hooks")')]],
  [
    "debezium plugin decoderbufs",
    (o) => (options(o, "shop_db").debezium = { "plugin.name": "decoderbufs" }),
    [e("app", "shop_db", 'options.debezium["plugin.name"]', "decoderbufs cannot be decoded; grouparoo-stream supports only pgoutput")],
  ],
  [
    "debezium snapshot mode custom",
    (o) => (options(o, "shop_db").debezium = { "plugin.name": "pgoutput", "snapshot.mode": "custom" }),
    [e("app", "shop_db", 'options.debezium["snapshot.mode"]', "custom is not supported (supported: initial, no_data, never, always, initial_only, when_needed)")],
  ],
  [
    "debezium slot.name contradicts slot",
    (o) => (options(o, "shop_db").debezium = { "plugin.name": "pgoutput", "slot.name": "other" }),
    [e("app", "shop_db", "options.slot", 'is "shop_slot" but options.debezium["slot.name"] is "other"; give one')],
  ],
  [
    "debezium heartbeat not a number",
    (o) => (options(o, "shop_db").debezium = { "plugin.name": "pgoutput", "heartbeat.interval.ms": "often" }),
    [e("app", "shop_db", 'options.debezium["heartbeat.interval.ms"]', 'must be an integer from 0 to 2147483647 (got "often")')],
  ],
  [
    "debezium autocreate no_tables",
    (o) => (options(o, "shop_db").debezium = { "plugin.name": "pgoutput", "publication.autocreate.mode": "no_tables" }),
    [e("app", "shop_db", 'options.debezium["publication.autocreate.mode"]', "no_tables is not supported (supported: all_tables, filtered, disabled)")],
  ],
  // Sources
  [
    "unknown source type",
    (o) => (find(o, "users_table").type = "mysql-cdc"),
    [e("source", "users_table", "type", 'must be one of postgres-cdc, kafka-debezium, postgres-table-import, postgres-query-import (got "mysql-cdc")')],
  ],
  ["source app missing", (o) => (find(o, "users_table").appId = "nope"), [e("source", "users_table", "appId", 'no app with id "nope"')]],
  ["source app of the wrong class", (o) => (find(o, "users_table").appId = "users"), [e("source", "users_table", "appId", '"users" is a model, not an app')]],
  [
    "source app of the wrong type",
    (o) => (find(o, "users_table").appId = "bus"),
    [e("source", "users_table", "appId", 'app "bus" is a kafka app; a postgres-cdc source needs a postgres app')],
  ],
  [
    "source mapping to a property that is not unique",
    (o) => (find(o, "purchases_table").mapping = { user_id: "first_name" }),
    [e("source", "purchases_table", "mapping.user_id", 'targets property "first_name", which is not unique')],
  ],
  ["source mapping to a missing property", (o) => (find(o, "purchases_table").mapping = { user_id: "uid" }), [e("source", "purchases_table", "mapping.user_id", 'no property with id "uid"')]],
  [
    "empty source mapping",
    (o) => (find(o, "users_table").mapping = {}),
    [
      e("model", "users", "(model)", "has no primary key: no source maps a column to a unique property of its own"),
      e("source", "users_table", "mapping", "maps no column; map a source column to a unique property"),
    ],
  ],
  ["postgres-cdc without table", (o) => (find(o, "users_table").options = {}), [e("source", "users_table", "options.table", "is required")]],
  [
    "table outside the debezium include list",
    (o) => (options(o, "shop_db").debezium = { "plugin.name": "pgoutput", "table.include.list": "public.users" }),
    [e("source", "purchases_table", "options.table", 'public.purchases is not captured by app "shop_db" (options.debezium["table.include.list"])')],
  ],
  [
    "kafka-debezium unknown format",
    (o) => Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.public.purchases", format: "avro" } }),
    [e("source", "purchases_table", "options.format", 'must be one of debezium, debezium-unwrapped, json (got "avro")')],
  ],
  [
    "kafka-debezium dead-letter topic the source reads",
    (o) => Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "/^shop\\..*/", deadLetterTopic: "shop.dlq" } }),
    [
      e(
        "source",
        "purchases_table",
        "options.deadLetterTopic",
        'the source reads "shop.dlq" itself (topic /^shop\\..*/): each message it cannot decode would come back, be set aside and copied again without end; choose a topic it does not read',
      ),
    ],
  ],
  [
    "kafka-debezium dead-letter topic of the source's own topic",
    (o) => Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.purchases", deadLetterTopic: "shop.purchases" } }),
    [e("source", "purchases_table", "options.deadLetterTopic", 'the source reads "shop.purchases" itself (topic shop.purchases): each message it cannot decode would come back, be set aside and copied again without end; choose a topic it does not read')],
  ],
  [
    "two kafka-debezium sources of one app on one topic",
    (o) => {
      Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.purchases" } });
      Object.assign(find(o, "users_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "/^shop\\..*/" } });
    },
    [
      e("source", "users_table", "options.topic", 'source "purchases_table" of the same kafka app "bus" reads a topic this one reads too (its topic shop.purchases): each message goes to one source only, so one of them would miss it; read a topic with one source'),
      e("source", "purchases_table", "options.topic", 'source "users_table" of the same kafka app "bus" reads a topic this one reads too (its topic /^shop\\..*/): each message goes to one source only, so one of them would miss it; read a topic with one source'),
    ],
  ],
  [
    "a second model's kafka-debezium source on a topic another source of the app reads",
    (o) => {
      Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.purchases" } });
      o.push(
        { class: "model", id: "people" },
        { class: "source", id: "people_topic", type: "kafka-debezium", appId: "bus", modelId: "people", options: { topic: "shop.purchases" }, mapping: { id: "person_id" } },
        { class: "property", id: "person_id", type: "integer", unique: true, sourceId: "people_topic", options: { column: "id" } },
      );
    },
    [
      e("source", "purchases_table", "options.topic", 'source "people_topic" of the same kafka app "bus" reads "shop.purchases" too (its topic shop.purchases): each message goes to one source only, so one of them would miss it; read a topic with one source'),
      e("source", "people_topic", "options.topic", 'source "purchases_table" of the same kafka app "bus" reads "shop.purchases" too (its topic shop.purchases): each message goes to one source only, so one of them would miss it; read a topic with one source'),
    ],
  ],
  [
    "kafka-debezium dead-letter topic another source of the app reads",
    (o) => {
      Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.purchases", deadLetterTopic: "shop.users" } });
      Object.assign(find(o, "users_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.users" } });
    },
    [e("source", "purchases_table", "options.deadLetterTopic", 'source "users_table" of the same kafka app reads "shop.users": the messages this one cannot decode would come to it; choose a topic no source of the app reads')],
  ],
  [
    "kafka-debezium dead-letter topic Kafka refuses",
    (o) => Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "shop.purchases", deadLetterTopic: "bad topic!" } }),
    [e("source", "purchases_table", "options.deadLetterTopic", 'does not match ^[A-Za-z0-9._-]+$ (got "bad topic!")')],
  ],
  [
    "kafka-debezium topic regex that does not compile",
    (o) => Object.assign(find(o, "purchases_table"), { type: "kafka-debezium", appId: "bus", options: { topic: "/shop.[/" } }),
    [e("source", "purchases_table", "options.topic", "/shop.[/ is not a valid regular expression: Invalid regular expression: /shop.[/: Unterminated character class")],
  ],
  [
    "two primary sources",
    (o) =>
      o.push(
        { class: "source", id: "admins_table", type: "postgres-cdc", appId: "shop_db", modelId: "users", options: { table: "admins" }, mapping: { id: "admin_id" } },
        { class: "property", id: "admin_id", type: "integer", unique: true, sourceId: "admins_table", options: { column: "id" } },
      ),
    [e("model", "users", "(model)", "has 2 primary sources (users_table, admins_table); exactly one source may map to a unique property of its own")],
  ],
  // Properties
  [
    "unknown property type",
    (o) => (find(o, "first_name").type = "text"),
    [e("property", "first_name", "type", 'must be one of boolean, date, email, float, integer, phoneNumber, string, url (got "text")')],
  ],
  ["property source missing", (o) => (find(o, "first_name").sourceId = "people"), [e("property", "first_name", "sourceId", 'no source with id "people"')]],
  ["unique array property", (o) => (find(o, "email").isArray = true), [e("property", "email", "isArray", "a unique property cannot be an array")]],
  [
    "unique property aggregated",
    (o) => o.push({ class: "property", id: "purchase_id", type: "integer", unique: true, sourceId: "purchases_table", options: { column: "id", aggregationMethod: "max" } }),
    [e("property", "purchase_id", "options.aggregationMethod", "a unique property must use exact (got max)")],
  ],
  [
    "aggregation on the primary source",
    (o) => (find(o, "first_name").options = { column: "first_name", aggregationMethod: "most recent value", sortColumn: "updated_at" }),
    [e("property", "first_name", "options.aggregationMethod", 'most recent value needs a source with many rows per record; "users_table" is its model\'s primary source (one row per record)')],
  ],
  [
    "sum of strings",
    (o) => Object.assign(find(o, "purchase_count"), { type: "string", options: { column: "amount", aggregationMethod: "sum" } }),
    [e("property", "purchase_count", "options.aggregationMethod", "sum needs an integer or float property (type is string)")],
  ],
  ["count as float", (o) => (find(o, "purchase_count").type = "float"), [e("property", "purchase_count", "options.aggregationMethod", "count needs an integer property (type is float)")]],
  [
    "most recent value without sortColumn",
    (o) => delete options(o, "last_purchase_at").sortColumn,
    [e("property", "last_purchase_at", "options.sortColumn", "is required for most recent value")],
  ],
  [
    "sortColumn with sum",
    (o) => (options(o, "lifetime_value").sortColumn = "created_at"),
    [e("property", "lifetime_value", "options.sortColumn", "only applies to most recent value and least recent value (method is sum)")],
  ],
  [
    "array property with count",
    (o) => Object.assign(find(o, "skus"), { type: "integer", options: { column: "sku", aggregationMethod: "count" } }),
    [e("property", "skus", "options.aggregationMethod", "an array property collects values with exact (got count)")],
  ],
  [
    "unknown aggregation method",
    (o) => (options(o, "lifetime_value").aggregationMethod = "median"),
    [
      e(
        "property",
        "lifetime_value",
        "options.aggregationMethod",
        'must be one of exact, count, sum, average, min, max, most recent value, least recent value (got "median")',
      ),
    ],
  ],
  [
    "unknown filter operator",
    (o) => (filter0(o).op = "contains"),
    [e("property", "lifetime_value", "filters[0].op", 'must be one of eq, ne, gt, gte, lt, lte, substring, notSubstring, in, exists, notExists (got "contains")')],
  ],
  ["filter without match", (o) => delete filter0(o).match, [e("property", "lifetime_value", "filters[0].match", "is required for op eq")]],
  ["exists filter with match", (o) => (filter0(o).op = "exists"), [e("property", "lifetime_value", "filters[0].match", "op exists takes no match")]],
  ["in filter with a number", (o) => Object.assign(filter0(o), { op: "in", match: 5 }), [e("property", "lifetime_value", "filters[0].match", "op in needs a list (or a comma-separated string)")]],
  ["list with eq filter", (o) => (filter0(o).match = ["a", "b"]), [e("property", "lifetime_value", "filters[0].match", "only op in takes a list (op is eq)")]],
  // Groups
  ["rule on a missing property", (o) => (rule0(o, "high_value").propertyId = "ltv"), [e("group", "high_value", "rules[0].propertyId", 'no property with id "ltv"')]],
  [
    "operator not valid for strings",
    (o) => (find(o, "high_value").rules = [{ propertyId: "first_name", op: "gt", match: "a" }]),
    [e("group", "high_value", "rules[0].op", `gt is not valid for a property of type string (valid: ${STRING_OPS})`)],
  ],
  [
    "operator not valid for booleans",
    (o) => (find(o, "high_value").rules = [{ propertyId: "vip", op: "like", match: "t%" }]),
    [e("group", "high_value", "rules[0].op", "like is not valid for a property of type boolean (valid: exists, notExists, eq, ne)")],
  ],
  [
    "eleven rules",
    (o) => (find(o, "high_value").rules = Array.from({ length: 11 }, (_, i) => ({ propertyId: "purchase_count", op: "gt", match: i }))),
    [e("group", "high_value", "rules", "has 11 rules; at most 10 are allowed")],
  ],
  ["relative rule without number", (o) => delete rule0(o, "recent_buyers").relativeMatchNumber, [e("group", "recent_buyers", "rules[0].relativeMatchNumber", "is required for relative_gt")]],
  [
    "relative rule with an unknown unit",
    (o) => (rule0(o, "recent_buyers").relativeMatchUnit = "fortnights"),
    [e("group", "recent_buyers", "rules[0].relativeMatchUnit", 'must be one of days, weeks, months, quarters, years (got "fortnights")')],
  ],
  [
    "relative number on a plain comparison",
    (o) => (rule0(o, "high_value").relativeMatchNumber = 3),
    [e("group", "high_value", "rules[0].relativeMatchNumber", "only applies to relative_gt and relative_lt (op is gte)")],
  ],
  ["comparison without match", (o) => delete rule0(o, "high_value").match, [e("group", "high_value", "rules[0].match", "is required for gte")]],
  ["number rule matching a word", (o) => (rule0(o, "high_value").match = "lots"), [e("group", "high_value", "rules[0].match", '"lots" is not a number')]],
  [
    "date rule matching a word",
    (o) => (find(o, "high_value").rules = [{ propertyId: "signed_up_at", op: "gt", match: "yesterday" }]),
    [e("group", "high_value", "rules[0].match", '"yesterday" is not an ISO-8601 date or epoch milliseconds')],
  ],
  [
    "boolean rule matching yes",
    (o) => (find(o, "high_value").rules = [{ propertyId: "vip", op: "eq", match: "yes" }]),
    [e("group", "high_value", "rules[0].match", '"yes" is not true or false')],
  ],
  ["gt null", (o) => (rule0(o, "high_value").match = null), [e("group", "high_value", "rules[0].match", "null can only be matched with eq or ne (op is gte)")]],
  ["unknown match type", (o) => (find(o, "high_value").matchType = "some"), [e("group", "high_value", "matchType", 'must be one of all, any (got "some")')]],
  [
    "group of a missing model",
    (o) => (find(o, "high_value").modelId = "accounts"),
    [
      e("group", "high_value", "modelId", 'no model with id "accounts"'),
      e("group", "high_value", "rules[0].propertyId", 'property "lifetime_value" belongs to model "users", not "accounts"'),
      e("destination", "crm", "groupId", 'group "high_value" belongs to model "accounts", not "users"'),
    ],
  ],
  // Destinations
  ["group collection without groupId", (o) => delete find(o, "crm").groupId, [e("destination", "crm", "groupId", "is required when collection is group")]],
  ["model collection with groupId", (o) => (find(o, "crm").collection = "model"), [e("destination", "crm", "groupId", "only applies when collection is group")]],
  ["groupId naming a model", (o) => (find(o, "crm").groupId = "users"), [e("destination", "crm", "groupId", '"users" is a model, not a group')]],
  // A topic name Kafka refuses was accepted: every export was retried to --max-attempts, then dead-lettered.
  [
    "kafka-topic destination topic Kafka refuses",
    (o) => Object.assign(find(o, "crm"), { type: "kafka-topic", appId: "bus", options: { topic: "crm exports" } }),
    [e("destination", "crm", "options.topic", 'does not match ^[A-Za-z0-9._-]+$ (got "crm exports")')],
  ],
  ["kafka-topic destination topic ..", (o) => Object.assign(find(o, "crm"), { type: "kafka-topic", appId: "bus", options: { topic: ".." } }), [e("destination", "crm", "options.topic", '".." is not a name Kafka gives a topic')]],
  // A groupsColumn that is also a mapped field was accepted: the group names overwrote the property's
  // values (and, on the primaryKey, the key) in every row written.
  [
    "postgres-table groupsColumn that is a mapped field",
    (o) => Object.assign(find(o, "crm"), { type: "postgres-table", appId: "shop_db", options: { table: "crm", primaryKey: "id", groupsColumn: "email" } }),
    [e("destination", "crm", "options.groupsColumn", '"email" is also a remote field of the mapping (property "email"): the group names would overwrite its values; choose another column')],
  ],
  [
    "postgres-table groupsColumn that is the primaryKey",
    (o) => Object.assign(find(o, "crm"), { type: "postgres-table", appId: "shop_db", options: { table: "crm", primaryKey: "id", groupsColumn: "id" } }),
    [e("destination", "crm", "options.groupsColumn", '"id" is also a remote field of the mapping (property "user_id"): the group names would overwrite its values; choose another column')],
  ],
  ["unknown sync mode", (o) => (find(o, "crm").syncMode = "mirror"), [e("destination", "crm", "syncMode", 'must be one of sync, additive, enrich (got "mirror")')]],
  ["destination mapping to a missing property", (o) => (find(o, "crm").mapping = { id: "user_id", email: "mail" }), [e("destination", "crm", "mapping.email", 'no property with id "mail"')]],
  [
    "group membership of a missing group",
    (o) => (find(o, "crm").destinationGroupMemberships = { "Recent Buyers": "recent" }),
    [e("destination", "crm", 'destinationGroupMemberships["Recent Buyers"]', 'no group with id "recent"')],
  ],
  ["destination app of the wrong type", (o) => (find(o, "crm").appId = "shop_db"), [e("destination", "crm", "appId", 'app "shop_db" is a postgres app; a webhook destination needs a webhook app')]],
  [
    "postgres-table primaryKey not mapped",
    (o) => Object.assign(find(o, "crm"), { type: "postgres-table", appId: "shop_db", options: { table: "contacts", primaryKey: "user_id" } }),
    [e("destination", "crm", "options.primaryKey", '"user_id" is not a remote field of the mapping')],
  ],
  [
    "postgres-table primaryKey named after what every object inherits, not mapped",
    (o) => Object.assign(find(o, "crm"), { type: "postgres-table", appId: "shop_db", options: { table: "contacts", primaryKey: "toString" } }),
    [e("destination", "crm", "options.primaryKey", '"toString" is not a remote field of the mapping')],
  ],
  [
    "postgres-table primaryKey on a non-unique property",
    (o) => Object.assign(find(o, "crm"), { type: "postgres-table", appId: "shop_db", options: { table: "contacts", primaryKey: "name" }, mapping: { name: "first_name" } }),
    [e("destination", "crm", "options.primaryKey", '"name" maps property "first_name", which is not unique')],
  ],
  ["webhook batch size zero", (o) => (find(o, "crm").options = { batchSize: 0 }), [e("destination", "crm", "options.batchSize", "must be at least 1 (got 0)")]],
  // Schedules and API keys
  [
    "schedule on a streaming source",
    (o) => o.push({ class: "schedule", id: "every_minute", sourceId: "users_table", recurringFrequency: 60000 }),
    [e("schedule", "every_minute", "sourceId", 'source "users_table" is a postgres-cdc source, which streams; schedules drive postgres-table-import and postgres-query-import')],
  ],
  [
    "schedule too frequent",
    (o) => o.push({ class: "schedule", id: "often", sourceId: "users_table", recurringFrequency: 10 }),
    [e("schedule", "often", "recurringFrequency", "must be at least 1000 (got 10)")],
  ],
  ["specific key without permissions", (o) => (find(o, "ops").type = "specific"), [e("apiKey", "ops", "permissions", "is required for a specific key (or permissionAllRead / permissionAllWrite)")]],
  [
    "literal api key",
    (o) => (find(o, "ops").apiKey = "0123456789abcdef0123"),
    [e("apiKey", "ops", "apiKey", "must be a ${VAR} reference to an environment variable (a literal key in a config file is refused: anyone who reads the file could use it)")],
  ],
  [
    "api key with a default in the file",
    (o) => (find(o, "ops").apiKey = "${OPS_API_KEY:-0123456789abcdef0123}"),
    [e("apiKey", "ops", "apiKey", "must be a ${VAR} reference to an environment variable (a literal key in a config file is refused: anyone who reads the file could use it)")],
  ],
  ["full key with permissions", (o) => (find(o, "ops").permissionAllRead = true), [e("apiKey", "ops", "permissionAllRead", "only applies to a specific key (a full key has every permission)")]],
  [
    "a topic twice",
    (o) => Object.assign(find(o, "ops"), { type: "specific", permissions: [{ topic: "record", read: true, write: false }, { topic: "record", read: true, write: true }] }),
    [e("apiKey", "ops", "permissions[1].topic", 'topic "record" is listed twice')],
  ],
  [
    "unknown topic",
    (o) => Object.assign(find(o, "ops"), { type: "specific", permissions: [{ topic: "records", read: true, write: false }] }),
    [e("apiKey", "ops", "permissions[0].topic", 'must be one of status, record, group, run, export, deadLetter, metrics (got "records")')],
  ],
  ["short api key", (o) => (find(o, "ops").apiKey = "short"), [e("apiKey", "ops", "apiKey", "must be at least 16 characters long")]],
  [
    "two keys with the same secret",
    (o) => o.push({ class: "apiKey", id: "ops2", apiKey: "${OPS_API_KEY}" }),
    [e("apiKey", "ops2", "apiKey", 'is the same key as apiKey "ops"')],
  ],
];

describe("invalid configs", () => {
  it("starts from a valid config", () => {
    expect(errorsOf(() => undefined)).toEqual([]);
  });

  it.each(cases)("%s", (_name, mutate, expected) => {
    expect(errorsOf(mutate)).toEqual(expected);
  });

  it("reports every error at once, across objects", () => {
    const errors = errorsOf((o) => {
      find(o, "bus").type = "rabbitmq";
      find(o, "first_name").sourceId = "people";
      find(o, "crm").syncMode = "mirror";
    });
    expect(errors.map((x) => `${x.id}/${x.field}`)).toEqual(["bus/type", "first_name/sourceId", "crm/syncMode"]);
  });

  it("has at least 40 distinct invalid configs", () => {
    expect(new Set(cases.map(([name]) => name)).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });
});
