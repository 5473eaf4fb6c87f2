// Checks of app objects beyond their shape: each app type's own cross-field checks.
import type { AppConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkApps(v: Validation): void {
  const context = v.context();
  for (const entry of v.valid("app")) {
    const app = v.located<AppConfig>(entry);
    const spec = v.catalog.apps.get(app.type);
    if (spec?.check) v.reportAll(entry, spec.check(app, context));
  }
}
