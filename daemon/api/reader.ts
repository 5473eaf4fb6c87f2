// The API thread (started by api/thread.ts): the daemon's HTTP listener, serving reads from its own
// read-only view of the state and asking the daemon's thread, by message, for what only it knows or
// may do (status, readiness, metrics, writes).
import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { compileDomain, type Domain } from "../../core/domain.js";
import { Store } from "../../state/store.js";
import { ApiError, RELOADING, unavailable } from "./errors.js";
import { ApiKeys, type StoredKey } from "./keys.js";
import { startHttpServer, type Api, type ApiBackend, type ForwardedReply, type ForwardedRequest, type HttpLogger } from "./server.js";
import { CALL_TIMEOUT_MS, CLAIM_GIVEN_UP, CLAIM_WAITING, HEARTBEAT_STALE_MS, type Call, type FromReader, type ReaderData, type ToReader } from "./thread.js";
import type { Config } from "../../core/config/types.js";
import type { DaemonStatus } from "./status.js";

const port = parentPort;
if (!port) throw new Error("api/reader.ts runs only as the daemon's API thread");
const data = workerData as ReaderData;
const post = (message: FromReader) => port.postMessage(message);

// The thread's scheduling priority (--api-nice; Linux: setpriority(2) on a thread id sets that
// thread's nice value, not the process's). Above the process's own, the stream is served first on a
// busy machine and API reads take the CPU that is left. Elsewhere the thread keeps the process's.
if (data.nice > 0) {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.max(getPriority(tid), data.nice));
  } catch {
    // Not Linux: nothing to do.
  }
}

let keys = new ApiKeys([]);
let domain: Domain | undefined;
let why = data.why;
const use = (generation: { config: Config; keys: StoredKey[] } | null) => {
  // While a reload swaps generations the old keys still answer (as on the daemon's thread); the
  // routes that need a domain answer 503.
  if (generation) keys = ApiKeys.fromDigests(generation.keys);
  domain = generation ? compileDomain(generation.config) : undefined;
};

let next = 0;
const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
/**
 * Asks the daemon's thread; with `timeout`, a 503 with its message when it has not answered by then
 * (unless `giveUp` says the call can no longer be given up: a write the daemon's thread took).
 */
const ask = <T>(call: Call, timeout?: { ms: number; message: string; giveUp?: () => boolean }): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const id = next++;
    const timer = timeout === undefined ? undefined : setTimeout(() => {
      if (timeout.giveUp && !timeout.giveUp()) return;
      waiting.delete(id);
      reject(unavailable(timeout.message));
    }, timeout.ms);
    waiting.set(id, {
      resolve: (value) => (clearTimeout(timer), resolve(value as T)),
      reject: (error) => (clearTimeout(timer), reject(error)),
    });
    post({ type: "call", id, call });
  });

/** A read's 503 when the daemon's thread has not answered within `ms`. */
const answerWithin = (ms: number) => ({ ms, message: `the daemon's thread did not answer within ${ms / 1000} s (its event loop is blocked or overloaded; see its log and grouparoo_nodejs_eventloop_lag_seconds)` });

/**
 * Hands a write route to the daemon's thread: a 503 when that thread has not taken it within
 * CALL_TIMEOUT_MS (its event loop blocked or overloaded), and then it is never done (thread.ts, the
 * claim); once taken, its answer is awaited however long the pipeline takes to run it.
 */
const forward = (request: ForwardedRequest): Promise<ForwardedReply> => {
  const claim = new Int32Array(new SharedArrayBuffer(4));
  return ask<ForwardedReply>(
    { method: "forward", request, claim },
    {
      ms: CALL_TIMEOUT_MS,
      message: `the daemon's thread did not take the request within ${CALL_TIMEOUT_MS / 1000} s (its event loop is blocked or overloaded; see its log and grouparoo_nodejs_eventloop_lag_seconds); nothing was done: send it again`,
      giveUp: () => Atomics.compareExchange(claim, 0, CLAIM_WAITING, CLAIM_GIVEN_UP) === CLAIM_WAITING,
    },
  );
};

/** When the daemon's thread last said it is alive (thread.ts HEARTBEAT_MS). */
let lastBeat = Date.now();

const logger: HttpLogger = {
  isLevelEnabled: (level: string) => (level === "debug" ? data.debug : true),
  debug: (fields: object, message?: string) => post({ type: "log", level: "debug", fields: { ...fields }, message: message ?? "" }),
  error: (fields: object, message?: string) => {
    const { err, ...rest } = fields as { err?: Error };
    // An Error crosses as its name, message and stack (pino's err serializer reads those).
    post({ type: "log", level: "error", fields: { ...rest, ...(err ? { err: { type: err.name, message: err.message, stack: err.stack } } : {}) }, message: message ?? "" });
  },
} as HttpLogger;

let server: Api | undefined;
/** The state, read-only; undefined while the daemon's thread upgrades its layout (data.stateLater). */
let opened: Store | undefined;
const openState = (): Store => (opened = Store.open(data.state, { readOnly: true }));
try {
  if (!data.stateLater) openState();
} catch (error) {
  post({ type: "listen-failed", message: `the API thread cannot read the state: ${(error as Error).message}` });
  process.exit(1);
}
/**
 * What the routes read: the state once open; before that (an upgrade under way) every use of it
 * answers 503, although no route reads it then, since the daemon has no config generation yet.
 */
const bound = new Map<PropertyKey, unknown>();
const store = new Proxy({} as Store, {
  get(_target, property) {
    const real = opened;
    if (!real) throw unavailable("the daemon is upgrading the state to this version's layout; try again once it is ready (/readyz)");
    let value = bound.get(property);
    if (value === undefined) {
      value = Reflect.get(real, property, real) as unknown;
      if (typeof value === "function") bound.set(property, (value = (value as (...args: unknown[]) => unknown).bind(real)));
    }
    return value;
  },
});

const backend: ApiBackend = {
  keys: () => keys,
  store,
  domain: () => domain,
  notServing: () => why,
  alive: () => {
    const silent = Date.now() - lastBeat;
    return silent <= HEARTBEAT_STALE_MS ? null : `the daemon's thread has not run for ${Math.round(silent / 1000)} s (its event loop is blocked)`;
  },
  status: () => ask<DaemonStatus>({ method: "status" }, answerWithin(CALL_TIMEOUT_MS)),
  notReady: () => ask<string | null>({ method: "notReady" }, answerWithin(CALL_TIMEOUT_MS)).catch((error: Error) => error.message),
  metrics: () => ask<{ contentType: string; text: string }>({ method: "metrics" }, answerWithin(CALL_TIMEOUT_MS)),
  // Writes never run here: server.ts hands every write route to the daemon's thread (forward).
  perform: () => Promise.reject(new Error("writes run on the daemon's thread")),
  requestRuns: () => Promise.reject(new Error("writes run on the daemon's thread")),
  stopRun: () => Promise.reject(new Error("writes run on the daemon's thread")),
};

port.on("message", (message: ToReader) => {
  switch (message.type) {
    case "generation":
      why = message.why ?? RELOADING;
      return use(message.generation);
    case "beat":
      lastBeat = Date.now();
      return;
    case "state":
      // The upgrade is done. The daemon would stop without a listener: a state this thread cannot
      // open now ends the thread, and the daemon's thread then stops (died()).
      if (!opened) openState();
      return;
    case "result": {
      const call = waiting.get(message.id);
      if (!call) return;
      waiting.delete(message.id);
      if (!message.error) return call.resolve(message.value);
      const { statusCode, code, message: text } = message.error;
      return call.reject(statusCode !== undefined && code !== undefined ? new ApiError(statusCode, code, text) : new Error(text));
    }
    case "close":
      void (async () => {
        // In-flight requests finish; a client that never completes its request is cut off after 2 s.
        const cut = setTimeout(() => server?.server.closeAllConnections(), 2000);
        await server?.close();
        clearTimeout(cut);
        await opened?.close();
        port.close();
      })();
  }
});

try {
  server = await startHttpServer(backend, {
    listen: data.listen,
    apiInsecure: data.apiInsecure,
    metricsAuth: data.metricsAuth,
    logger,
    forward,
  });
  post({ type: "listening" });
} catch (error) {
  post({ type: "listen-failed", message: (error as Error).message });
  await opened?.close();
  port.close();
}
