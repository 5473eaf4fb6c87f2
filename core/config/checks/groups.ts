// Checks of groups: their model, and their rules (core/rules.ts holds the only check of rules, the
// one compileGroup applies, so a group that validates is a group the daemon can evaluate).
import { groupProblems, ruleProblems } from "../../rules.js";
import { ruleSpecOf } from "../../domain.js";
import { topLevelRuleType } from "../../vocabulary.js";
import type { GroupConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkGroups(v: Validation): void {
  for (const entry of v.valid("group")) {
    const group = entry.value as unknown as GroupConfig;
    v.ref(entry, ["modelId"], group.modelId, "model");
    for (const p of groupProblems({ matchType: group.matchType ?? "all", rules: group.rules })) v.report(entry, p.field, p.message);
    if (group.rules.length === 0) v.report(entry, "rules", "is empty; a group without rules matches nobody", "warning");
    group.rules.forEach((rule, i) => {
      const topLevel = topLevelRuleType(rule.propertyId);
      const property = topLevel === undefined ? v.propertyOfModel(entry, ["rules", i, "propertyId"], rule.propertyId, group.modelId) : undefined;
      const type = topLevel ?? property?.type;
      if (type === undefined) return;
      for (const p of ruleProblems(ruleSpecOf(rule, type, property?.isArray === true))) v.report(entry, ["rules", i, p.field === "key" ? "propertyId" : p.field], p.message);
    });
  }
}
