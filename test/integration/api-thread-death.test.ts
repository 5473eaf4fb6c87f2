// The API thread dying after it listened (daemon/api/thread.ts): the daemon is told once, through
// died(), with the thread's own error, and nothing else logs it (the daemon logs it once as it stops).
// The thread is made to fail the way a bad config generation would: compiling it throws in the thread.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Config } from "../../core/config/types.js";
import { ApiKeys } from "../../daemon/api/keys.js";
import type { ApiBackend, HttpLogger } from "../../daemon/api/server.js";
import { startApiThread } from "../../daemon/api/thread.js";
import { Store } from "../../state/store.js";
import { freePort } from "../services/process.js";

describe("the API thread dying after it listened", () => {
  const work = mkdtempSync(join(tmpdir(), "api-thread-death-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("is reported once, through died(), with its error", { timeout: 60_000 }, async () => {
    const store = Store.open(join(work, "state"));
    const keys = new ApiKeys([]);
    const unavailable = () => Promise.reject(new Error("not in this test"));
    const backend: ApiBackend = {
      store,
      keys: () => keys,
      domain: () => undefined,
      notServing: () => "starting",
      notReady: () => "starting",
      status: unavailable,
      metrics: unavailable,
      perform: unavailable,
      requestRuns: unavailable,
      stopRun: unavailable,
    };
    const errors: { fields: unknown; message: string | undefined }[] = [];
    const logger = { isLevelEnabled: () => true, debug: () => undefined, error: (fields: unknown, message?: string) => void errors.push({ fields, message }) } as unknown as HttpLogger;
    const deaths: Error[] = [];
    let dead: () => void = () => undefined;
    const reported = new Promise<void>((resolve) => (dead = resolve));
    const listen = { host: "127.0.0.1", port: await freePort() };
    const listener = await startApiThread(backend, { listen, apiInsecure: false, metricsAuth: false, logger }, "starting", (error) => {
      deaths.push(error);
      dead();
    });
    try {
      // Listening: /healthz answers from the thread.
      expect((await fetch(`http://${listen.host}:${listen.port}/healthz`)).status).toBe(200);
      listener.generation({ config: {} as Config, keys });
      await reported;
      // Let any second report arrive before counting.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(deaths.map((e) => e.message)).toEqual(["Cannot read properties of undefined (reading 'map')"]);
      expect(errors).toEqual([]);
    } finally {
      await listener.close();
      await store.close();
    }
  });
});
