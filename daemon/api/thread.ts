// The HTTP listener on its own thread (a worker_threads Worker running api/reader.ts), so that API
// traffic never waits for a batch and a batch never waits for API traffic. The thread opens the state
// read-only (LMDB serves any number of readers beside its one writer, each from its own snapshot) and
// answers every read route itself: records, groups and their members, Runs, exports, dead letters,
// /healthz and the OpenAPI document. What only the daemon's thread knows or may do is asked of it by
// message: /status and the page (live source positions, lags, Runs in progress), /readyz, /metrics
// (the registry lives here), and every write route, which the thread checks (key, input) and then
// hands over whole to the daemon's own in-process listener, so that writes still run in the pipeline,
// in turn with the batches. The thread learns each config generation (its domain and its keys, as
// digests) by message when it starts and at every reload.
import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { Config } from "../../core/config/types.js";
import { PipelineClosedError } from "../../streams/pipeline.js";
import { ApiError } from "./errors.js";
import type { ApiKeys, StoredKey } from "./keys.js";
import type { Api, ApiBackend, ForwardedReply, ForwardedRequest, HttpOptions } from "./server.js";

/** What the daemon's thread answers the API thread. */
export type Call =
  | { method: "status" }
  | { method: "metrics" }
  | { method: "notReady" }
  /**
   * A write route, as it came in. `claim` (shared by both threads): 0 while it waits, 1 once the
   * daemon's thread took it (it runs, and its answer is awaited however long the pipeline takes), 2
   * once the API thread gave up on it (503 after CALL_TIMEOUT_MS): it then never runs. Whichever
   * thread changes it from 0 decides, so a write answered 503 is never done.
   */
  | { method: "forward"; request: ForwardedRequest; claim?: Int32Array };

/** The states of a forwarded write's claim (Call "forward"). */
export const CLAIM_WAITING = 0;
export const CLAIM_TAKEN = 1;
export const CLAIM_GIVEN_UP = 2;

/** An error crossing threads: an ApiError keeps its status and code (503 while reloading, say). */
export interface CrossedError {
  statusCode?: number;
  code?: string;
  message: string;
}

export type ToReader =
  | { type: "generation"; generation: { config: Config; keys: StoredKey[] } | null; why?: string }
  | { type: "beat" }
  | { type: "result"; id: number; value?: unknown; error?: CrossedError }
  | { type: "state" }
  | { type: "close" };

export type FromReader =
  | { type: "listening" }
  | { type: "listen-failed"; message: string }
  | { type: "call"; id: number; call: Call }
  | { type: "log"; level: "debug" | "error"; fields: Record<string, unknown>; message: string };

export interface ReaderData {
  state: string;
  listen: { host: string; port: number };
  apiInsecure: boolean;
  metricsAuth: boolean;
  /** The thread's nice value (--api-nice); 0 keeps the process's priority. */
  nice: number;
  debug: boolean;
  /** Why there is no config generation yet (each one comes by message). */
  why: string;
  /**
   * The state is being upgraded to this version's layout: the thread opens it only once told it is
   * done (a "state" message); until then the routes that read it answer 503.
   */
  stateLater?: boolean;
}

/** How often the daemon's thread tells the API thread it is alive. */
export const HEARTBEAT_MS = 1000;
/** /healthz fails once the daemon's thread has not said so for this long. */
export const HEARTBEAT_STALE_MS = 10_000;
/**
 * How long /status, /readyz and /metrics wait for the daemon's thread, and a write for that thread to
 * take it (once taken, a write waits for the pipeline).
 */
export const CALL_TIMEOUT_MS = 10_000;

export interface ApiListener {
  /** The config generation the API serves (null while a reload swaps generations, or once stopping: `why`). */
  generation(generation: { config: Config; keys: ApiKeys } | null, why?: string): void;
  /** The state's upgrade is done: a thread started with `stateLater` may open it now. */
  stateReady(): void;
  close(): Promise<void>;
}

/**
 * The listener thread's young generation, in MB. The process runs with a larger one for the stream's
 * batches (--max-semi-space-size=32 from the launcher; 64 when this was measured), and the thread
 * inherited it: its garbage is per request and short-lived, and each scavenge of that space took the
 * cores the stream shares for milliseconds. With 16 MB, in bench/api.ts, the streaming p99 with 5,000
 * lookups/s was ×0.90 to ×1.38 of the stream alone in four runs, against ×1.20 to ×1.94 in four runs
 * with the inherited size (README, Benchmarks).
 */
const API_YOUNG_GENERATION_MB = 16;

/**
 * The API thread's code: the compiled reader, or (running from the TypeScript sources, as the tests
 * do) the source imported through tsx, a development dependency. Compiled, this module is
 * dist/daemon/api/thread.js beside the reader, or part of a chunk of the bundled daemon
 * (dist/daemon/chunks/, see bundle.ts), from where the reader is ../api/reader.js.
 */
function readerThread(data: ReaderData): Worker {
  const options = { workerData: data, name: "grouparoo-stream api", resourceLimits: { maxYoungGenerationSizeMb: API_YOUNG_GENERATION_MB } };
  const compiled = [new URL("./reader.js", import.meta.url), new URL("../api/reader.js", import.meta.url)].find((url) => existsSync(url));
  if (compiled) return new Worker(compiled, options);
  return new Worker(new URL("./reader-source.mjs", import.meta.url), options);
}

const crossed = (error: unknown): CrossedError => {
  if (error instanceof ApiError) return { statusCode: error.statusCode, code: error.code, message: error.message };
  if (error instanceof PipelineClosedError) return { statusCode: 503, code: "UNAVAILABLE", message: error.message };
  return { message: error instanceof Error ? error.message : String(error) };
};

/**
 * Starts the API thread listening on `options.listen`; resolves once it listens, rejects (with the
 * listen error's message) when it cannot.
 */
export async function startApiThread(
  backend: ApiBackend,
  options: Omit<HttpOptions, "forward"> & { nice?: number },
  /** Why the API has no config generation yet (it comes by generation()). */
  why: string,
  /** Called once if the thread dies after it listened (the daemon then stops: no listener, no probes). */
  died: (error: Error) => void,
  /** The state is being upgraded: the thread opens it once stateReady() is called. */
  stateLater = false,
): Promise<ApiListener> {
  // The daemon's own listener, never bound to a socket: it answers the writes the thread hands over
  // (the thread logs each request once; this one logs only failures).
  const quiet: HttpOptions["logger"] = { isLevelEnabled: (level: string) => level !== "debug" && options.logger.isLevelEnabled(level), debug: () => undefined, error: options.logger.error.bind(options.logger) } as HttpOptions["logger"];
  // Built on the first write handed over (most daemons never get one): fastify and the routes are
  // then compiled on this thread only when needed, not at every start.
  let built: Promise<Api> | undefined;
  const local = () =>
    (built ??= import("./server.js")
      .then(async ({ buildHttpServer }) => {
        const app = await buildHttpServer(backend, { ...options, logger: quiet });
        await app.ready();
        return app;
      })
      .catch((error: unknown) => {
        // Not kept: the next write tries again (each failed one answers 500 with the reason).
        built = undefined;
        options.logger.error({ err: error }, "cannot build the listener for the writes the API thread hands over");
        throw error;
      }));
  const closeLocal = async () => {
    if (built) await built.then((app) => app.close(), () => undefined);
  };
  const data: ReaderData = { state: backend.store.path, listen: options.listen, apiInsecure: options.apiInsecure ?? false, metricsAuth: options.metricsAuth ?? false, nice: options.nice ?? 0, debug: options.logger.isLevelEnabled("debug"), why, ...(stateLater ? { stateLater } : {}) };
  const worker = readerThread(data);
  const send = (message: ToReader) => worker.postMessage(message);

  const answer = async (call: Call): Promise<unknown> => {
    switch (call.method) {
      case "status":
        return backend.status();
      case "metrics":
        return backend.metrics();
      case "notReady":
        return backend.notReady();
      case "forward": {
        const { request, claim } = call;
        // Given up by the API thread (it answered 503: the daemon's thread took too long to get here): not done.
        if (claim && Atomics.compareExchange(claim, 0, CLAIM_WAITING, CLAIM_TAKEN) !== CLAIM_WAITING) return undefined;
        const response = await (await local()).inject({
          method: request.method as "GET",
          url: request.url,
          headers: request.headers,
          ...(request.body === undefined ? {} : { payload: JSON.stringify(request.body) }),
        });
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(response.headers)) if (typeof value === "string") headers[name] = value;
        return { statusCode: response.statusCode, headers, payload: response.payload } satisfies ForwardedReply;
      }
    }
  };

  let exited = false;
  let closing = false;
  let listening = false;
  let failure: Error | undefined;
  const gone = new Promise<void>((resolve) =>
    worker.once("exit", (code) => {
      exited = true;
      resolve();
      if (listening && !closing) died(failure ?? new Error(`the API thread exited (code ${code})`));
    }),
  );
  await new Promise<void>((resolve, reject) => {
    worker.on("message", (message: FromReader) => {
      switch (message.type) {
        case "listening":
          return resolve();
        case "listen-failed":
          return reject(new Error(message.message));
        case "call":
          answer(message.call).then(
            (value) => send({ type: "result", id: message.id, value }),
            (error: unknown) => send({ type: "result", id: message.id, error: crossed(error) }),
          );
          return;
        case "log":
          if (message.level === "error") options.logger.error(message.fields, message.message);
          else options.logger.debug(message.fields, message.message);
          return;
      }
    });
    // Until it listens, a failure of the thread is the start's (logged here, thrown to the caller);
    // after that, it is died()'s, which the caller logs: once, not twice (removed below).
    worker.once("error", (error) => {
      options.logger.error({ err: error }, "the API thread failed");
      reject(error);
    });
    worker.once("exit", (code) => reject(new Error(`the API thread exited (code ${code}) before it listened`)));
  }).catch(async (error: unknown) => {
    await worker.terminate();
    await closeLocal();
    throw error;
  });
  worker.removeAllListeners("error");
  listening = true;
  worker.on("error", (error) => (failure = error));
  // The daemon's thread says it is alive every second: the API thread's /healthz fails when these stop
  // (a blocked event loop), as it did when the daemon's thread answered it.
  const beat = setInterval(() => send({ type: "beat" }), HEARTBEAT_MS);
  beat.unref();

  return {
    generation(generation, why) {
      if (exited) return;
      send({ type: "generation", generation: generation && { config: generation.config, keys: generation.keys.digests() }, ...(why ? { why } : {}) });
    },
    stateReady() {
      if (!exited) send({ type: "state" });
    },
    async close() {
      closing = true;
      clearInterval(beat);
      if (!exited) {
        send({ type: "close" });
        // The thread closes its listener and its state; it is stopped if it does not within 10 s.
        const timer = setTimeout(() => void worker.terminate(), 10_000);
        await gone;
        clearTimeout(timer);
      }
      await closeLocal();
    },
  };
}
