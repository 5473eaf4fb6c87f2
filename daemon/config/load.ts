// Reading config files: a YAML or JSON file, or a directory of them (recursively), each holding one
// object or a list of objects. `${VAR}` and `${VAR:-default}` in string values read the environment.
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { extname, join, relative } from "node:path";
import type * as Yaml from "yaml";
import { lazyPackage } from "../../connectors/lazy.js";
import type { ConfigIssue, FieldPath } from "../../core/config/issues.js";
import { formatField, unsetVariableMessage } from "../../core/config/issues.js";
import type { RawObject } from "../../core/config/types.js";

/** Loaded when the first YAML file is read. */
const yaml = lazyPackage<typeof Yaml>("yaml");

export type { RawObject };

const EXTENSIONS = new Set([".yml", ".yaml", ".json"]);

/**
 * The config files of a path: the file itself, or a directory's .yml, .yaml and .json files, its
 * subdirectories' too (not those whose name starts with a dot, nor node_modules). Symbolic links are
 * followed, to files and to directories (a Kubernetes ConfigMap volume holds only links, through its
 * `..data` link); a directory reached twice is read once. A link to nothing with a config file's name
 * is listed, so that reading it names it.
 */
export function listConfigFiles(path: string, seen = new Set<string>()): string[] {
  const stat = statSync(path);
  if (stat.isFile()) return [path];
  const real = realpathSync(path);
  if (seen.has(real)) return [];
  seen.add(real);
  const files: string[] = [];
  for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const full = join(path, entry.name);
    const configName = EXTENSIONS.has(extname(entry.name).toLowerCase());
    let kind: "file" | "directory" | "other" = entry.isDirectory() ? "directory" : entry.isFile() ? "file" : "other";
    if (entry.isSymbolicLink()) {
      try {
        const target = statSync(full);
        kind = target.isDirectory() ? "directory" : target.isFile() ? "file" : "other";
      } catch {
        kind = configName ? "file" : "other";
      }
    }
    if (kind === "directory") files.push(...listConfigFiles(full, seen));
    else if (kind === "file" && configName) files.push(full);
  }
  return files;
}

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel.startsWith("..") || rel === "" ? file : rel;
}

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
/** A whole value that is one reference without a default: a secret from the environment alone. */
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/** The fields of a raw object whose whole value is one `${VAR}` reference (formatted paths). */
export function environmentFields(value: unknown, path: FieldPath = []): string[] {
  if (typeof value === "string") return WHOLE_REFERENCE.test(value) ? [formatField(path)] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => environmentFields(item, [...path, i]));
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([key, item]) => environmentFields(item, [...path, key]));
  return [];
}

/** Replaces ${VAR} and ${VAR:-default} in every string of value; reports variables that are unset. */
export function interpolate(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  onMissing: (variable: string, path: FieldPath) => void,
  path: FieldPath = [],
): unknown {
  if (typeof value === "string") {
    if (!value.includes("${")) return value;
    return value.replace(VARIABLE, (_match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== "") return found;
      if (fallback !== undefined) return fallback;
      if (found === undefined) onMissing(name, path);
      return found ?? "";
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, env, onMissing, [...path, i]));
  if (value !== null && typeof value === "object") {
    // Own keys whatever their name (a `__proto__` key stays a key, for the validation to refuse it).
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, env, onMissing, [...path, key])]));
  }
  return value;
}

/** Line and column (from 1) of a character offset in `text`. */
function lineColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, col: offset - (before.lastIndexOf("\n") + 1) + 1 };
}

/**
 * The first key an object of `text` (valid JSON) repeats, with its offset. JSON.parse keeps the last
 * value of a repeated key and drops the others without a word; a YAML file's repeated key is an error.
 */
function repeatedJsonKey(text: string): { key: string; offset: number } | undefined {
  // One entry per open object (the keys seen so far) or array (null).
  const open: (Set<string> | null)[] = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const keys = open[open.length - 1];
      if (keyNext && keys) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) return { key, offset: i };
        keys.add(key);
        keyNext = false;
      }
      i = end;
    } else if (c === "{") {
      open.push(new Set());
      keyNext = true;
    } else if (c === "[") {
      open.push(null);
      keyNext = false;
    } else if (c === "}" || c === "]") {
      open.pop();
      keyNext = false;
    } else if (c === ",") {
      keyNext = open[open.length - 1] instanceof Set;
    }
  }
  return undefined;
}

function parseFile(file: string, text: string): { data?: unknown; error?: string } {
  if (extname(file).toLowerCase() === ".json") {
    let data: unknown;
    try {
      data = JSON.parse(text) as unknown;
    } catch (error) {
      // Where, as for YAML, when the parser says it ("... in JSON at position 29").
      const message = (error as Error).message;
      // V8 says "in JSON at position N" inside the value and "after JSON at position N" for text past
      // its end (Node 22 adds "(line L column C)"): both are named by line and column.
      const position = / (in|after) JSON at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
      if (!position) return { error: `not valid JSON: ${message}` };
      const at = lineColumn(text, Number(position[2]));
      return { error: `not valid JSON at line ${at.line}, column ${at.col}: ${message.replace(position[0], position[1] === "after" ? " after the JSON value" : "")}` };
    }
    const repeated = repeatedJsonKey(text);
    if (repeated) {
      const at = lineColumn(text, repeated.offset);
      return { error: `not valid JSON at line ${at.line}, column ${at.col}: the key ${JSON.stringify(repeated.key)} is repeated in its object (keys must be unique)` };
    }
    return { data };
  }
  const doc = yaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const at = first.linePos?.[0];
    const message = first.message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? first.message;
    return { error: `not valid YAML${at ? ` at line ${at.line}, column ${at.col}` : ""}: ${message}` };
  }
  return { data: doc.toJS() as unknown };
}

export function readConfig(path: string, env: Readonly<Record<string, string | undefined>> = process.env): { objects: RawObject[]; issues: ConfigIssue[] } {
  const objects: RawObject[] = [];
  const issues: ConfigIssue[] = [];
  let files: string[];
  try {
    files = listConfigFiles(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (error as Error).message;
    issues.push({ severity: "error", file: displayPath(path), objectClass: "", id: "(none)", field: "(file)", message: reason });
    return { objects, issues };
  }
  if (files.length === 0) {
    issues.push({ severity: "error", file: displayPath(path), objectClass: "", id: "(none)", field: "(file)", message: "no .yml, .yaml or .json config files found" });
  }
  for (const full of files) {
    const file = displayPath(full);
    const fileIssue = (message: string, id = "(file)") => issues.push({ severity: "error", file, objectClass: "", id, field: "(file)", message });
    let text: string;
    try {
      text = readFileSync(full, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      fileIssue(code === "ENOENT" ? "cannot be read: no such file (a symbolic link to nothing?)" : `cannot be read: ${(error as Error).message}`);
      continue;
    }
    const { data, error } = parseFile(full, text);
    if (error) {
      fileIssue(error);
      continue;
    }
    if (data === null || data === undefined) continue; // an empty file holds no objects
    const list = Array.isArray(data) ? data : [data];
    list.forEach((item, index) => {
      if (item === null || typeof item !== "object" || Array.isArray(item)) {
        fileIssue(`item ${index} is not an object with class and id`, `#${index}`);
        return;
      }
      const raw = item as Record<string, unknown>;
      const id = typeof raw.id === "string" && raw.id !== "" ? raw.id : `#${index}`;
      const objectClass = typeof raw.class === "string" ? raw.class.toLowerCase() : "";
      const value = interpolate(raw, env, (variable, fieldPath) =>
        issues.push({
          severity: "error",
          file,
          objectClass: typeof raw.class === "string" ? raw.class : "",
          id,
          field: formatField(fieldPath),
          message: unsetVariableMessage(variable, objectClass === "apikey" && fieldPath.join(".") === "apiKey"),
        }),
      ) as Record<string, unknown>;
      const fromEnvironment = environmentFields(raw);
      objects.push({ file, index, value, ...(fromEnvironment.length > 0 ? { fromEnvironment } : {}) });
    });
  }
  return { objects, issues };
}
