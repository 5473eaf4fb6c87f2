// Looking a record up by a unique property's value as a person writes it (GET /api/v1/records/{model}
// ?{property}=..., streams/inspect.ts findRecord). A phone number is written with its "+", which a
// query string reads as a space: `?phone=+44 20 7946 0958` arrived as " 44 20 7946 0958", which is no
// valid number, and the answer (400 INVALID_VALUE) showed the value without saying why.
import { describe, expect, it } from "vitest";
import type { Store } from "../../state/store.js";
import { findRecord } from "../../streams/inspect.js";
import { coreDomain } from "../helpers/core.js";

describe("findRecord", () => {
  const domain = coreDomain([{ class: "property", id: "phone", type: "phoneNumber", unique: true, sourceId: "users_table", options: { column: "phone" } }]);
  // An invalid value is answered before the state is read.
  const store = {} as Store;

  it("says how to send a phone number's + when the query string turned it into a space", () => {
    expect(findRecord(store, domain, "users", "phone", " 44 20 7946 0958")).toEqual({
      problem: "invalid",
      message: '" 44 20 7946 0958" is not a valid phoneNumber value for property "phone" (Invalid phoneNumber value); a "+" in a query string is read as a space: write it as %2B (?phone=%2B44 20 7946 0958)',
    });
    // Other invalid values are named as before.
    expect(findRecord(store, domain, "users", "phone", "not a number")).toEqual({ problem: "invalid", message: '"not a number" is not a valid phoneNumber value for property "phone" (Invalid phoneNumber value)' });
    expect(findRecord(store, domain, "users", "user_id", " 4x")).toEqual({ problem: "invalid", message: '" 4x" is not a valid integer value for property "user_id" (Invalid integer value)' });
  });
});
