// Checks of schedules: each drives a polling source, and every polling source has one.
import type { ScheduleConfig, SourceConfig } from "../schema.js";
import type { Validation } from "../validation.js";

export function checkSchedules(v: Validation): void {
  const polling = [...v.catalog.sources.values()].filter((s) => s.polling).map((s) => s.type);
  for (const entry of v.valid("schedule")) {
    const schedule = entry.value as unknown as ScheduleConfig;
    if (!v.ref(entry, ["sourceId"], schedule.sourceId, "source")) continue;
    const source = v.get<SourceConfig>("source", schedule.sourceId);
    if (source && !polling.includes(source.type)) {
      v.report(entry, "sourceId", `source "${source.id}" is a ${source.type} source, which streams; schedules drive ${polling.join(" and ")}`);
    }
  }
  const scheduled = new Set(v.valid("schedule").map((e) => (e.value as unknown as ScheduleConfig).sourceId));
  for (const entry of v.valid("source")) {
    const source = entry.value as unknown as SourceConfig;
    if (polling.includes(source.type) && !scheduled.has(source.id)) v.report(entry, "(source)", `is a ${source.type} source without a schedule; it never runs`, "warning");
  }
}
