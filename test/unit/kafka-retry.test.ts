// The admin requests kafkajs does not retry itself (fetchOffsets, the claim of a partition's takeover)
// are tried again while their error is one kafkajs marks retriable: a NOT_COORDINATOR (a group's
// coordinator loading or just moved) failed a takeover and stopped the worker with 70 (seen in CI on
// a broker just started). Anything else fails at once; a retriable error past the time allowed fails.
import { describe, expect, it } from "vitest";
import { retryRetriable } from "../../connectors/kafka/errors.js";

const notCoordinator = () => Object.assign(new Error("This is not the correct coordinator for this group"), { name: "KafkaJSProtocolError", type: "NOT_COORDINATOR", retriable: true });

describe("retryRetriable", () => {
  it("tries a request again while kafkajs marks its error retriable, backing off", async () => {
    const slept: number[] = [];
    let calls = 0;
    const result = await retryRetriable(
      async () => {
        calls += 1;
        if (calls <= 3) throw notCoordinator();
        return "offsets";
      },
      30_000,
      async (ms) => void slept.push(ms),
    );
    expect({ result, calls, slept }).toEqual({ result: "offsets", calls: 4, slept: [100, 200, 400] });
  });

  it("fails at once on an error kafkajs does not retry, and with the last one once the time is up", async () => {
    let calls = 0;
    const refused = Object.assign(new Error("Not authorized to access group"), { type: "GROUP_AUTHORIZATION_FAILED", retriable: false });
    await expect(retryRetriable(async () => ((calls += 1), Promise.reject(refused)), 30_000, async () => undefined)).rejects.toBe(refused);
    expect(calls).toBe(1);
    await expect(retryRetriable(async () => Promise.reject(notCoordinator()), 0, async () => undefined)).rejects.toThrow("This is not the correct coordinator for this group");
  });
});
