// The changelog's restore consumer stopping for good (an error kafkajs does not retry, such as a group
// ACL refusing the restore group): the restores under way and every later one fail naming it, so that
// the worker's takeover fails and the worker stops (70) instead of waiting for ever, unready.
import type { Admin, Kafka } from "kafkajs";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ChangelogReader } from "../../connectors/kafka/changelog.js";

/** kafkajs' consumer as the reader uses it, its events fired by hand. */
function fakeKafka() {
  const handlers = new Map<string, (event: { payload: Record<string, unknown> }) => void>();
  const consumer = {
    events: { CRASH: "consumer.crash", GROUP_JOIN: "consumer.group_join" },
    on: (name: string, handler: (event: { payload: Record<string, unknown> }) => void) => void handlers.set(name, handler),
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async () => undefined,
    pause: () => undefined,
    resume: () => undefined,
    seek: () => undefined,
  };
  const fire = (name: string, payload: Record<string, unknown>) => handlers.get(name)?.({ payload });
  return { kafka: { consumer: () => consumer } as unknown as Kafka, fire };
}

const admin = { fetchTopicOffsets: async () => [{ partition: 0, low: "0", high: "10", offset: "10" }] } as unknown as Admin;

describe("the changelog reader", () => {
  it("fails the restores under way and later ones when its consumer stops for good, and ignores a crash kafkajs restarts from", async () => {
    const { kafka, fire } = fakeKafka();
    const reader = new ChangelogReader(kafka, admin, "users.changelog", "workers", pino({ level: "silent" }));
    await reader.start();
    fire("consumer.group_join", { memberAssignment: { "users.changelog": [0, 1] } });
    const first = reader.restore(0, "nonce", async () => undefined);
    const settled = first.then(
      () => "resolved",
      (error: Error) => error.message,
    );
    // One kafkajs restarts from: the restore goes on.
    fire("consumer.crash", { error: new Error("The coordinator is loading"), restart: true });
    expect(await Promise.race([settled, new Promise((r) => setTimeout(() => r("pending"), 50))])).toBe("pending");
    fire("consumer.crash", { error: new Error("Not authorized to access group: workers.restore.x"), restart: false });
    const message = "the changelog users.changelog's restore consumer stopped on an error kafkajs does not retry: Not authorized to access group: workers.restore.x";
    expect(await settled).toBe(message);
    await expect(reader.restore(1, "nonce", async () => undefined)).rejects.toThrow(message);
  });
});
