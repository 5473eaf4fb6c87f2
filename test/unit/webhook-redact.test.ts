// Webhook URLs in messages: credentials and query values redacted, short query values (a version
// number) not replaced everywhere else in the message.
import { describe, expect, it } from "vitest";
import { scrubUrl } from "../../connectors/webhook/app.js";

describe("scrubUrl", () => {
  it("redacts the URL's credentials and query values, and leaves a short value's other occurrences alone", () => {
    const url = "https://alice:s3cret-pass@example.com/hooks?token=tok456secret&v=1";
    expect(scrubUrl(`POST ${url} answered 500 after 1 try (token tok456secret, pass s3cret-pass)`, url)).toBe(
      "POST https://example.com/hooks?token=[redacted]&v=[redacted] answered 500 after 1 try (token [redacted], pass [redacted])",
    );
  });
});
