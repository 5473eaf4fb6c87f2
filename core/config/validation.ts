// What the checks of every config class share while one config is validated: the objects by class
// and id, the issues found so far (each with its file, object, field and message), and lookups that
// report what they cannot resolve.
import type { ConfigIssue, FieldPath, Severity } from "./issues.js";
import { formatField, isUnsetVariable } from "./issues.js";
import type { ConfigClass } from "./schema.js";
import type { CheckContext, ComponentCatalog, FieldProblem, Located, RawObject } from "./types.js";
import type { AppConfig, PropertyConfig, SourceConfig } from "./schema.js";

export interface Entry {
  cls: ConfigClass;
  id: string;
  raw: RawObject;
  /** The object after defaults, when its shape is valid. */
  value?: Record<string, unknown>;
}

/**
 * Whether an id or a key names a member every JavaScript object has (`__proto__`, `constructor`,
 * `toString`, ...): records, definitions and mappings are plain objects keyed by them, where such a
 * name reads the inherited member, or (`__proto__`) cannot be held at all.
 */
const reserved = (key: string): boolean => key in Object.prototype;
/** The reserved names (see reserved) one by one, for the JSON Schema published for editors. */
export const RESERVED_NAMES: readonly string[] = Object.getOwnPropertyNames(Object.prototype).sort();
const RESERVED = (what: string) => `"${what}" is reserved: every JavaScript object has a member of that name, and the daemon keeps objects keyed by it`;

/** The paths under `value` of keys that are reserved (a mapping's `__proto__: first_name`, say). */
function reservedKeys(value: unknown, path: FieldPath = []): { path: FieldPath; key: string }[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => reservedKeys(item, [...path, i]));
  if (value === null || typeof value !== "object") return [];
  return Object.keys(value).flatMap((key) => [...(reserved(key) ? [{ path: [...path, key], key }] : []), ...reservedKeys((value as Record<string, unknown>)[key], [...path, key])]);
}
const article = (word: string) => (/^[aeiou]/i.test(word) ? "an" : "a");

const fieldKey = (issue: Pick<ConfigIssue, "file" | "objectClass" | "id" | "field">): string => JSON.stringify([issue.file, issue.objectClass.toLowerCase(), issue.id, issue.field]);

export class Validation {
  readonly issues: ConfigIssue[];
  /** Where each issue's object sits in its file, so issues read in file order. */
  private readonly positions = new Map<ConfigIssue, number>();
  readonly entries: Entry[] = [];
  private readonly byClass: Map<ConfigClass, Map<string, Entry>>;

  constructor(
    readonly catalog: ComponentCatalog,
    classes: readonly ConfigClass[],
    extraIssues: readonly ConfigIssue[],
  ) {
    this.issues = [...extraIssues];
    this.byClass = new Map(classes.map((c) => [c, new Map()]));
    for (const issue of extraIssues) if (isUnsetVariable(issue)) this.unset.add(fieldKey(issue));
  }

  /** Fields whose environment variable is not set (the loader said so): their value is a stand-in. */
  private readonly unset = new Set<string>();

  report(entry: Pick<Entry, "raw" | "id"> & { cls?: string }, path: FieldPath | string, message: string, severity: Severity = "error"): void {
    const issue: ConfigIssue = {
      severity,
      file: entry.raw.file,
      objectClass: entry.cls ?? "",
      id: entry.id,
      field: typeof path === "string" ? path : formatField(path),
      message,
    };
    // A field whose variable is not set holds "" in its place: what the schema says of that ("must not
    // be empty", "must be at least 16 characters long") is not a problem of its own, only the unset
    // variable is.
    if (this.unset.has(fieldKey(issue))) return;
    this.positions.set(issue, entry.raw.index);
    this.issues.push(issue);
  }

  reportAll(entry: Entry, problems: readonly FieldProblem[]): void {
    for (const p of problems) this.report(entry, p.field, p.message, p.severity);
  }

  /** Registers an object by class and id; false (and an issue) when the id is taken. */
  add(entry: Entry): boolean {
    if (reserved(entry.id)) {
      // Under `__proto__` a record's value was lost without a word; under `constructor` a removed object
      // looked still there to the planning of Runs.
      this.report(entry, "id", `${RESERVED(entry.id)}; choose another id`);
      return false;
    }
    // A field of the object itself is the shape check's ("is not a known field"), except `__proto__`,
    // which it cannot see.
    for (const { path, key } of reservedKeys(entry.raw.value)) if (path.length > 1 || key === "__proto__") this.report(entry, path, `${RESERVED(key)}; choose another name`);
    const sameClass = this.byClass.get(entry.cls);
    const previous = sameClass?.get(entry.id);
    if (previous) {
      this.report(entry, "id", `duplicate ${entry.cls} id; also defined in ${previous.raw.file} (item ${previous.raw.index})`);
      return false;
    }
    if (typeof entry.raw.value.id === "string" && entry.raw.value.id !== "") sameClass?.set(entry.id, entry);
    this.entries.push(entry);
    return true;
  }

  /** All objects of a class, whatever their shape. */
  all(cls: ConfigClass): Entry[] {
    return [...(this.byClass.get(cls)?.values() ?? [])];
  }

  /** The objects of a class whose shape is valid. */
  valid(cls: ConfigClass): Entry[] {
    return this.all(cls).filter((e) => e.value !== undefined);
  }

  get<T>(cls: ConfigClass, id: string): T | undefined {
    return this.byClass.get(cls)?.get(id)?.value as T | undefined;
  }

  /** Resolves a reference to an object of `cls`, reporting one that is missing or of another class. */
  ref(entry: Entry, field: FieldPath, id: unknown, cls: ConfigClass): boolean {
    if (typeof id !== "string") return false;
    if (this.byClass.get(cls)?.has(id)) return this.byClass.get(cls)?.get(id)?.value !== undefined;
    const other = [...this.byClass.keys()].find((c) => this.byClass.get(c)?.has(id));
    this.report(entry, field, other ? `"${id}" is ${article(other)} ${other}, not ${article(cls)} ${cls}` : `no ${cls} with id "${id}"`);
    return false;
  }

  modelOfProperty(property: PropertyConfig): string | undefined {
    return this.get<SourceConfig>("source", property.sourceId)?.modelId;
  }

  /** Resolves a property that must belong to `modelId`. */
  propertyOfModel(entry: Entry, field: FieldPath, propertyId: string, modelId: string): PropertyConfig | undefined {
    if (!this.ref(entry, field, propertyId, "property")) return undefined;
    const property = this.get<PropertyConfig>("property", propertyId);
    const model = property && this.modelOfProperty(property);
    if (property && model !== undefined && model !== modelId) {
      this.report(entry, field, `property "${propertyId}" belongs to model "${model}", not "${modelId}"`);
      return undefined;
    }
    return property;
  }

  /** The app (of the type a component of `type` runs on) and the model a source or destination names. */
  checkComponentRefs(entry: Entry, object: { type: string; appId: string; modelId: string }, appType: string | undefined): void {
    if (this.ref(entry, ["appId"], object.appId, "app")) {
      const app = this.get<AppConfig>("app", object.appId);
      if (app && appType !== undefined && app.type !== appType) {
        this.report(entry, "appId", `app "${object.appId}" is a ${app.type} app; a ${object.type} ${entry.cls} needs a ${appType} app`);
      }
    }
    this.ref(entry, ["modelId"], object.modelId, "model");
  }

  located<T>(entry: Entry): Located<T> {
    return { ...(entry.value as T), origin: { file: entry.raw.file, index: entry.raw.index } };
  }

  /** What a component's own check may look up. */
  context(): CheckContext {
    return {
      app: (id) => {
        const entry = this.byClass.get("app")?.get(id);
        return entry?.value ? this.located<AppConfig>(entry) : undefined;
      },
      property: (id) => {
        const entry = this.byClass.get("property")?.get(id);
        return entry?.value ? this.located<PropertyConfig>(entry) : undefined;
      },
      sources: () => [...(this.byClass.get("source")?.values() ?? [])].filter((entry) => entry.value !== undefined).map((entry) => this.located<SourceConfig>(entry)),
    };
  }

  /** The issues in file order (each file in the order read, objects by position). */
  sorted(objects: readonly RawObject[]): ConfigIssue[] {
    const fileOrder = new Map(objects.map((o, i) => [o.file, i]));
    return [...this.issues].sort(
      (a, b) => (fileOrder.get(a.file) ?? -1) - (fileOrder.get(b.file) ?? -1) || (this.positions.get(a) ?? -1) - (this.positions.get(b) ?? -1),
    );
  }
}
