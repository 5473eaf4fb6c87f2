// The config digest, which a reload compares to skip the config already running: objects read from
// other files give the same digest; any change of content, a key named "origin" in a mapping too,
// gives another.
import { describe, expect, it } from "vitest";
import { configDigest } from "../../../daemon/daemon.js";
import { validateObjects } from "../../../daemon/config/validate.js";
import { asRaw, validConfigObjects } from "../../helpers/config.js";

type Obj = Record<string, unknown>;
const digestOf = (objects: Obj[], file = "config.yml") => {
  const result = validateObjects(asRaw(objects, file));
  if (!result.config) throw new Error(JSON.stringify(result.issues));
  return configDigest(result.config);
};
const withDestination = (change: (destination: Obj) => Obj) => validConfigObjects().map((o) => (o.class === "destination" ? change(o) : o));

describe("configDigest", () => {
  it("is the same for the same objects read from another file", () => {
    expect(digestOf(validConfigObjects(), "a.yml")).toBe(digestOf(validConfigObjects(), "conf.d/b.yml"));
  });

  it("changes with a mapping whose remote field is named origin", () => {
    const a = withDestination((d) => ({ ...d, mapping: { ...(d.mapping as Obj), origin: "user_id" } }));
    const b = withDestination((d) => ({ ...d, mapping: { ...(d.mapping as Obj), origin: "email" } }));
    expect(digestOf(a)).not.toBe(digestOf(b));
    expect(digestOf(a)).not.toBe(digestOf(validConfigObjects()));
  });

  it("changes with any field", () => {
    expect(digestOf(withDestination((d) => ({ ...d, syncMode: "additive" })))).not.toBe(digestOf(validConfigObjects()));
    expect(digestOf(withDestination((d) => ({ ...d, destinationGroupMemberships: { origin: "recent_buyers" } })))).not.toBe(digestOf(validConfigObjects()));
  });
});
