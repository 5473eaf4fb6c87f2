// What `grouparoo-stream rebuild` and `POST /api/v1/runs` ask for (core/rebuild.ts).
import { describe, expect, it } from "vitest";
import { compileDomain } from "../../core/domain.js";
import { rebuildRequests } from "../../core/rebuild.js";
import { validateObjects } from "../../daemon/config/validate.js";
import { asRaw } from "../helpers/config.js";
import { coreDomain } from "../helpers/core.js";

describe("rebuildRequests", () => {
  it("names each Run's target, refuses an unknown id, and says why nothing was asked for", () => {
    const domain = coreDomain();
    const groups = [...domain.groups.keys()];
    expect(rebuildRequests(domain, { group: groups[0] })).toEqual([{ spec: { kind: "backfill", groupId: groups[0], modelId: "users" }, target: `group ${groups[0]}` }]);
    expect(rebuildRequests(domain, { group: "nope" })).toEqual({ message: 'no group "nope" in the config', unknown: "group" });
    expect(rebuildRequests(domain, { destination: "nope" })).toEqual({ message: 'no destination "nope" in the config', unknown: "destination" });
    expect(rebuildRequests(domain, {})).toEqual({ message: "name what to rebuild: --property, --source, --group, --destination or --all" });
    const all = rebuildRequests(domain, { all: true });
    expect(Array.isArray(all) && all.map((r) => r.target)).toEqual([...[...domain.sources.keys()].map((id) => `source ${id}`), ...groups.map((id) => `group ${id}`), ...[...domain.destinations.keys()].map((id) => `destination ${id}`)]);
    // A config with nothing to rebuild: said as such (the API's {"all": true} gets it), not as CLI flags.
    const bare = validateObjects(asRaw([]));
    if (!bare.config) throw new Error(JSON.stringify(bare.issues));
    expect(rebuildRequests(compileDomain(bare.config), { all: true })).toEqual({ message: "nothing to rebuild: the config has no source, group or destination" });
  });

  it("reads a source again once, when a property of it and the source are both named", () => {
    const domain = coreDomain();
    // email is a property of the primary source users_table: recomputing it is reading the source again.
    expect(rebuildRequests(domain, { property: "email", source: "users_table" })).toEqual([{ spec: { kind: "reread", sourceId: "users_table", modelId: "users" }, target: "source users_table" }]);
    expect(rebuildRequests(domain, { property: "lifetime_value", source: "purchases_table" })).toEqual([
      { spec: { kind: "rebuild", sourceId: "purchases_table", modelId: "users", propertyIds: ["lifetime_value"] }, target: "property lifetime_value" },
      { spec: { kind: "reread", sourceId: "purchases_table", modelId: "users" }, target: "source purchases_table" },
    ]);
    // rebuild --all with a property of a primary source: each source once.
    const all = rebuildRequests(domain, { all: true, property: "email" });
    expect(Array.isArray(all) && all.filter((r) => r.spec.kind === "reread").map((r) => r.target)).toEqual(["source users_table", "source purchases_table"]);
    // rebuild --all --group g --destination d: g's backfill and d's exports once.
    const group = [...domain.groups.keys()][0] ?? "";
    const destination = [...domain.destinations.keys()][0] ?? "";
    const every = rebuildRequests(domain, { all: true, group, destination });
    expect(Array.isArray(every) && every.map((r) => r.target).sort()).toEqual(Array.isArray(all) ? all.map((r) => r.target).sort() : []);
  });
});
