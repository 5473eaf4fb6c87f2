// Config problems as data: every error or warning names the file, the object (class and id), the
// field and what is wrong, so a user can fix all of them in one pass.

export type Severity = "error" | "warning";

export interface ConfigIssue {
  severity: Severity;
  file: string;
  /** The object's class as written (lower-cased), or "" when unknown. */
  objectClass: string;
  /** The object's id, or "#<index>" when it has none. */
  id: string;
  /** Dotted path of the field, e.g. `options.table`, `rules[2].op`, `options.debezium["slot.name"]`. */
  field: string;
  message: string;
}

export type FieldPath = readonly (string | number)[];

export function formatField(path: FieldPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === "" ? "(object)" : out;
}

/**
 * The message of a field whose environment variable is not set (the loader's, daemon/config/load.ts):
 * an API key's secret gets no suggestion of a default (a default would be a secret in the file).
 */
export function unsetVariableMessage(variable: string, apiKeySecret: boolean): string {
  return apiKeySecret
    ? `${UNSET_PREFIX}${variable} is not set: set it in the daemon's environment (an API key's secret comes only from there)`
    : `${UNSET_PREFIX}${variable} is not set (use \${${variable}:-default} for a default)`;
}

const UNSET_PREFIX = "environment variable ";

/** Whether an issue is the loader's for a field whose environment variable is not set (unsetVariableMessage). */
export function isUnsetVariable(issue: ConfigIssue): boolean {
  return issue.severity === "error" && issue.message.startsWith(UNSET_PREFIX) && / is not set[: (]/.test(issue.message);
}

export function formatIssue(issue: ConfigIssue): string {
  const object = issue.objectClass ? `${issue.objectClass} "${issue.id}"` : `"${issue.id}"`;
  return `${issue.severity}: ${issue.file}: ${object}: ${issue.field}: ${issue.message}`;
}

export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  constructor(readonly issues: readonly ConfigIssue[]) {
    const errors = issues.filter((i) => i.severity === "error");
    super(`invalid config (${errors.length} error${errors.length === 1 ? "" : "s"}):\n${errors.map(formatIssue).join("\n")}`);
    this.name = "ConfigError";
  }
}
