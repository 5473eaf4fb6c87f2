// Config generation from table definitions (pure): one postgres app, then for each table either a
// model with its primary postgres-cdc source (a table with its own primary key), or a secondary
// source of the model it references by foreign key, with aggregating properties. Writing the files
// refuses to overwrite anything without `force`.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { ColumnInfo, TableInfo } from "../../connectors/postgres/introspect.js";
import type { PropertyType } from "../../core/vocabulary.js";

export type ConfigObject = Record<string, unknown>;

export interface ConfigFile {
  name: string;
  comment: string;
  objects: ConfigObject[];
}

export interface GenerateOptions {
  appId: string;
  /** The app's options (connection), written as given. */
  appOptions: ConfigObject;
  /** Columns left out, as schema.table.column regexes (Debezium's column.exclude.list). */
  columnExcludeList?: readonly string[];
}

const NUMERIC: Record<string, PropertyType> = {
  int2: "integer",
  int4: "integer",
  int8: "integer",
  oid: "integer",
  numeric: "float",
  float4: "float",
  float8: "float",
  money: "float",
};
const DATES = new Set(["date", "timestamp", "timestamptz"]);

/** The property type for a column: from its Postgres type, refined by its name for text columns. */
export function propertyTypeOf(column: ColumnInfo): PropertyType {
  const numeric = NUMERIC[column.type];
  if (numeric) return numeric;
  if (column.type === "bool") return "boolean";
  if (DATES.has(column.type)) return "date";
  if (["text", "varchar", "bpchar", "citext", "name"].includes(column.type)) {
    if (/(^|_)e?mail(_address)?$/i.test(column.name)) return "email";
    if (/(^|_)(phone|mobile|phone_number|tel)$/i.test(column.name)) return "phoneNumber";
    if (/(^|_)(url|website|homepage|link)$/i.test(column.name)) return "url";
  }
  return "string";
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9_]/g, "_");
const qualified = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
const tableId = (t: { schema: string; name: string }) => (t.schema === "public" ? slug(t.name) : slug(`${t.schema}_${t.name}`));

export function planConfigFiles(tables: readonly TableInfo[], options: GenerateOptions): { files: ConfigFile[]; warnings: string[] } {
  const warnings: string[] = [];
  const files: ConfigFile[] = [
    {
      name: `${options.appId.replace(/[^A-Za-z0-9_.-]/g, "_")}.app.yml`,
      comment: "The Postgres database the sources read through logical replication (one slot, one publication).",
      objects: [{ class: "app", id: options.appId, type: "postgres", options: options.appOptions }],
    },
  ];
  const excluded = (table: TableInfo, column: string) =>
    (options.columnExcludeList ?? []).some((pattern) => new RegExp(`^${pattern}$`).test(`${qualified(table)}.${column}`));

  const keyed = new Map<string, TableInfo>();
  for (const table of tables) {
    if (table.primaryKey.length !== 1) {
      warnings.push(
        `${qualified(table)} skipped: ${table.primaryKey.length === 0 ? "it has no primary key" : `its primary key has ${table.primaryKey.length} columns`}; a source needs one unique key column`,
      );
      continue;
    }
    keyed.set(qualified(table), table);
  }
  // A table referencing another generated table (not by its own primary key) feeds that table's model.
  const parentOf = (table: TableInfo) =>
    table.foreignKeys.find((fk) => fk.column !== table.primaryKey[0] && keyed.has(`${fk.schema}.${fk.table}`) && keyed.get(`${fk.schema}.${fk.table}`)?.primaryKey[0] === fk.referencedColumn);

  for (const table of keyed.values()) {
    const id = tableId(table);
    const sourceId = `${id}_table`;
    const pk = table.primaryKey[0] as string;
    const columns = table.columns.filter((c) => !excluded(table, c.name) || c.name === pk);
    const parentKey = parentOf(table);
    if (!parentKey) {
      const keyProperty = `${id}_${slug(pk)}`;
      const objects: ConfigObject[] = [
        { class: "model", id, name: table.name, type: "profile" },
        {
          class: "source",
          id: sourceId,
          type: "postgres-cdc",
          appId: options.appId,
          modelId: id,
          options: { table: qualified(table) },
          mapping: { [pk]: keyProperty },
        },
        ...columns.map((column) => ({
          class: "property",
          id: `${id}_${slug(column.name)}`,
          type: propertyTypeOf(column),
          ...(column.name === pk ? { unique: true } : {}),
          ...(column.isArray && column.name !== pk ? { isArray: true } : {}),
          sourceId,
          options: { column: column.name },
        })),
      ];
      files.push({ name: `${id}.yml`, comment: `${qualified(table)}: model ${id}, one record per row, keyed by ${pk}.`, objects });
      continue;
    }
    const parent = keyed.get(`${parentKey.schema}.${parentKey.table}`) as TableInfo;
    const modelId = tableId(parent);
    const parentProperty = `${modelId}_${slug(parentKey.referencedColumn)}`;
    const objects: ConfigObject[] = [
      {
        class: "source",
        id: sourceId,
        type: "postgres-cdc",
        appId: options.appId,
        modelId,
        options: { table: qualified(table) },
        mapping: { [parentKey.column]: parentProperty },
      },
      { class: "property", id: `${id}_count`, type: "integer", sourceId, options: { column: pk, aggregationMethod: "count" } },
    ];
    for (const column of columns) {
      if (column.name === pk || column.name === parentKey.column || column.isArray) continue;
      const type = propertyTypeOf(column);
      if (type === "integer" || type === "float") {
        objects.push({ class: "property", id: `${id}_${slug(column.name)}_sum`, type, sourceId, options: { column: column.name, aggregationMethod: "sum" } });
      } else if (type === "date") {
        objects.push({ class: "property", id: `${id}_${slug(column.name)}_max`, type, sourceId, options: { column: column.name, aggregationMethod: "max" } });
      } else if (type !== "boolean") {
        objects.push({ class: "property", id: `${id}_${slug(column.name)}_values`, type, isArray: true, sourceId, options: { column: column.name } });
      }
    }
    files.push({
      name: `${id}.yml`,
      comment: `${qualified(table)}: many rows per ${modelId} record (by ${parentKey.column} -> ${qualified(parent)}.${parentKey.referencedColumn}); its properties aggregate them.`,
      objects,
    });
  }
  return { files, warnings };
}

export function renderConfigFile(file: ConfigFile): string {
  return `# ${file.comment}\n# Generated by grouparoo-stream; edit freely.\n${stringify(file.objects, { lineWidth: 0 })}`;
}

/** Writes the files into dir; refuses (writing nothing) when any exists and force is false. */
export function writeConfigFiles(dir: string, files: readonly ConfigFile[], force: boolean): { written: string[]; existing: string[] } {
  const paths = files.map((f) => join(dir, f.name));
  const existing = paths.filter((p) => existsSync(p));
  if (existing.length > 0 && !force) return { written: [], existing };
  mkdirSync(dir, { recursive: true });
  files.forEach((file, i) => writeFileSync(paths[i] as string, renderConfigFile(file)));
  return { written: paths, existing };
}
