// The daemon's HTTP listener (fastify): /metrics for Prometheus, /healthz (the process is alive) and
// /readyz (200 only while every source is connected and the daemon is not draining), the REST API
// under /api/v1 (routes.ts) with its OpenAPI document, and the status page at /. Who may do what is
// decided here, once, for every route: each route names its topic and access (read or write); a
// request presents a key as `Authorization: Bearer <key>` (or HTTP Basic, the key as the password);
// none or an unknown one is 401, one without the permission 403. With no apiKey objects in the config
// the API and the page are off (404), unless --api-insecure (loopback only) serves them without keys.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import { DefaultErrorFunction, SetErrorFunction, ValueErrorType } from "@sinclair/typebox/errors";
import type { Logger } from "pino";
import type { ApiTopic } from "../../core/config/schema.js";
import type { Domain } from "../../core/domain.js";
import type { RunSpec } from "../../core/definitions.js";
import type { Store } from "../../state/store.js";
import { PipelineClosedError, type Operation } from "../../streams/pipeline.js";
import { RunStopError, type RunState } from "../../streams/runs.js";
import { ApiError, ErrorBody, errorBody } from "./errors.js";
import { apiMode, permits, presentedSecret, type Access, type ApiKey, type ApiKeys } from "./keys.js";
import { renderStatusPage } from "./page.js";
import { registerApiRoutes } from "./routes.js";
import type { DaemonStatus } from "./status.js";

/** What the HTTP listener needs of the running daemon. */
export interface ApiBackend {
  /** The keys of the running config. */
  keys(): ApiKeys;
  readonly store: Store;
  /** The running config's domain; undefined while a reload swaps generations, or once stopping. */
  domain(): Domain | undefined;
  /** Why domain() is undefined (RELOADING or STOPPING, errors.ts). */
  notServing(): string;
  status(): Promise<DaemonStatus>;
  /** null when ready, else why not. */
  notReady(): string | null | Promise<string | null>;
  /** For a listener off the daemon's thread: null while that thread runs, else why it seems stuck (/healthz 503). */
  alive?(): string | null;
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Runs a write in the daemon's pipeline, in turn with the batches (the state's one writer). */
  perform<T>(operation: Operation<T>): Promise<T>;
  requestRuns(requests: readonly { spec: RunSpec; target: string }[], reason: string): Promise<RunState[]>;
  stopRun(id: string): Promise<RunState>;
}

/** What the listener logs: a request that failed, and each request at debug level. */
export type HttpLogger = Pick<Logger, "isLevelEnabled" | "debug" | "error">;

/** A request handed to the daemon's thread (api/thread.ts), as it came in, and its answer. */
export interface ForwardedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** The JSON body, parsed; undefined when there was none. */
  body: unknown;
}
export interface ForwardedReply {
  statusCode: number;
  headers: Record<string, string>;
  payload: string;
}

export interface HttpOptions {
  listen: { host: string; port: number };
  /** Serve the API and the page without keys when the config has none (loopback only; checked by the CLI). */
  apiInsecure?: boolean;
  /** /metrics needs a key with read on the metrics topic. */
  metricsAuth?: boolean;
  logger: HttpLogger;
  /**
   * Where writes go when this listener is not on the daemon's thread (api/reader.ts): every write
   * route, once its key and its input are checked here, is answered by the daemon's own listener.
   */
  forward?: (request: ForwardedRequest) => Promise<ForwardedReply>;
}

/** The headers of a forwarded answer that are passed on (the rest fastify sets itself). */
const FORWARDED_HEADERS = ["content-type", "www-authenticate", "allow", "cache-control", "content-security-policy", "location", "retry-after"];

/** What a route needs: a topic and an access, or only a valid key (the OpenAPI document). */
export interface RouteAccess {
  topic?: ApiTopic;
  access?: Access;
  /** The status page: a browser is asked for a key by HTTP Basic. */
  page?: boolean;
}

declare module "fastify" {
  interface FastifyContextConfig {
    guard?: RouteAccess;
  }
  interface FastifyRequest {
    apiKey?: ApiKey;
  }
}

export type Api = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/** What the probes need of a process: readiness and the metrics text. */
export type ProbeBackend = Pick<ApiBackend, "notReady" | "metrics" | "alive">;

// A value outside a closed list (?state=, ?kind=) is answered with the list, not "Expected union value".
SetErrorFunction((error) => {
  const options = (error.schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (error.errorType === ValueErrorType.Union && options?.every((o) => o.const !== undefined)) {
    return `must be one of ${options.map((o) => JSON.stringify(o.const)).join(", ")}`;
  }
  return DefaultErrorFunction(error);
});

function newApp(): Api {
  const app = Fastify({
    logger: false,
    // Large enough for any request this API takes (lists of seqs), small enough to refuse floods.
    bodyLimit: 1_048_576,
    routerOptions: { ignoreTrailingSlash: true },
    requestTimeout: 30_000,
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Query strings and path parameters are converted to their types; bodies are taken as sent.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.addSchema(ErrorBody);
  // Bodies are JSON only: any other content type is 415, not a string handed to a schema.
  app.removeContentTypeParser("text/plain");
  return app;
}

/** /healthz, /readyz and /metrics (behind a key with read on metrics when `metricsAuth`); other methods 405. */
function registerProbes(app: Api, backend: ProbeBackend, metricsAuth: boolean): void {
  app.get("/healthz", { schema: { hide: true } }, async (_request, reply) => {
    const stuck = backend.alive?.() ?? null;
    return stuck === null ? reply.type("text/plain; charset=utf-8").send("ok\n") : reply.code(503).type("text/plain; charset=utf-8").send(`not alive: ${stuck}\n`);
  });
  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    const reason = await backend.notReady();
    return reason === null ? reply.type("text/plain; charset=utf-8").send("ready\n") : reply.code(503).type("text/plain; charset=utf-8").send(`not ready: ${reason}\n`);
  });
  app.get("/metrics", { schema: { hide: true }, config: metricsAuth ? { guard: { topic: "metrics", access: "read" } } : {} }, async (_request, reply) => {
    const { contentType, text } = await backend.metrics();
    return reply.type(contentType).send(text);
  });
  app.route({
    method: ["POST", "PUT", "PATCH", "DELETE"],
    url: "/:endpoint(^(?:healthz|readyz|metrics)$)",
    schema: { hide: true },
    handler: async (_request: FastifyRequest, reply: FastifyReply) => reply.code(405).header("allow", "GET, HEAD").send(errorBody("METHOD_NOT_ALLOWED", "only GET and HEAD")),
  });
}

/**
 * The listener of the relay and of workers: the probes only (no API, no page), unknown routes 404 in
 * JSON as on the daemon.
 */
export async function startProbeServer(backend: ProbeBackend, listen: { host: string; port: number }): Promise<Api> {
  const app = newApp();
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0] ?? ""}: a relay or worker serves only /metrics, /healthz and /readyz (no API, no status page)`)));
  registerProbes(app, backend, false);
  await app.listen({ host: listen.host, port: listen.port });
  return app;
}

export async function buildHttpServer(backend: ApiBackend, options: HttpOptions): Promise<Api> {
  const app = newApp();

  const deny = (reply: FastifyReply, status: number, code: string, message: string, page = false) => {
    if (status === 401) reply.header("www-authenticate", page ? 'Basic realm="grouparoo-stream", charset="UTF-8"' : 'Bearer realm="grouparoo-stream"');
    return reply.code(status).type("application/json; charset=utf-8").send(errorBody(code, message));
  };

  // One decision for every route, before its body is read: a request without a valid key never gets that far.
  // A callback hook, not an async one: every request passes here, and a promise per request is not free.
  const authorize = (request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined => {
    const guard = request.routeOptions.config.guard;
    if (!guard) return undefined;
    const keys = backend.keys();
    const mode = apiMode(keys.size, options.apiInsecure ?? false);
    const metrics = guard.topic === "metrics";
    if (!metrics && mode === "off") {
      return deny(reply, 404, "API_OFF", "the API is off: the config has no apiKey objects (add one, or run with --api-insecure on a loopback address)");
    }
    if (mode === "insecure" && !metrics) return undefined;
    const secret = presentedSecret(request.headers.authorization);
    if (secret === undefined) {
      const why = request.headers.authorization === undefined ? "no API key" : "the Authorization header holds no API key";
      return deny(reply, 401, "UNAUTHORIZED", `${why}: send Authorization: Bearer <key>`, guard.page);
    }
    const key = keys.authenticate(secret);
    if (!key) return deny(reply, 401, "UNAUTHORIZED", "the API key is not one of this daemon's keys", guard.page);
    request.apiKey = key;
    if (guard.topic && guard.access && !permits(key, guard.topic, guard.access)) {
      return deny(reply, 403, "FORBIDDEN", `API key "${key.id}" may not ${guard.access} ${guard.topic}`);
    }
    return undefined;
  };
  app.addHook("onRequest", (request, reply, done) => {
    // A denied request is answered (reply.send) and goes no further; fastify then ignores done().
    if (authorize(request, reply) === undefined) done();
  });

  // Writes run on the daemon's thread, the state's one writer: checked here, answered there.
  const forward = options.forward;
  if (forward) {
    const handOver = async (request: FastifyRequest, reply: FastifyReply) => {
      const headers: Record<string, string> = {};
      for (const name of ["authorization", "content-type"]) {
        const value = request.headers[name];
        if (typeof value === "string") headers[name] = value;
      }
      const answer = await forward({ method: request.method, url: request.url, headers, body: request.body ?? undefined });
      for (const name of FORWARDED_HEADERS) if (answer.headers[name] !== undefined) reply.header(name, answer.headers[name]);
      return reply.code(answer.statusCode).send(answer.payload);
    };
    // Only on the write routes: a read pays for no hook of its own.
    app.addHook("onRoute", (route) => {
      if ((route.config as { guard?: RouteAccess } | undefined)?.guard?.access !== "write") return;
      const own = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler];
      route.preHandler = [...own, handOver];
    });
  }

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    if (error instanceof ApiError) return reply.code(error.statusCode).send(errorBody(error.code, error.message));
    if (error instanceof PipelineClosedError) return reply.code(503).send(errorBody("UNAVAILABLE", error.message));
    if (error instanceof RunStopError) return reply.code(error.code === "RUN_NOT_FOUND" ? 404 : 409).send(errorBody(error.code, error.message));
    if (error.validation) return reply.code(400).send(errorBody("BAD_REQUEST", error.message));
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error instanceof SyntaxError ? "BAD_JSON" : error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" ? "UNSUPPORTED_MEDIA_TYPE" : error.code === "FST_ERR_CTP_BODY_TOO_LARGE" ? "BODY_TOO_LARGE" : "BAD_REQUEST";
      const message = code === "UNSUPPORTED_MEDIA_TYPE" ? `${error.message}: send JSON with Content-Type: application/json` : error.message;
      return reply.code(status).send(errorBody(code, message));
    }
    options.logger.error({ err: error, method: request.method, path: request.routeOptions.url }, "HTTP request failed");
    return reply.code(500).send(errorBody("INTERNAL", "the daemon failed to answer (see its log)"));
  });

  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0] ?? ""}`)));

  // An API route that takes no query parameters refuses any (a typo is an error, not ignored).
  app.addHook("onRoute", (route) => {
    if (!route.url.startsWith("/api/v1/") || route.url === "/api/v1/openapi.json" || route.schema?.querystring !== undefined) return;
    route.schema = { ...route.schema, querystring: Type.Object({}, { additionalProperties: false }) };
  });

  // Never the headers (they carry the key): the route, the status, which key, how long.
  if (options.logger.isLevelEnabled("debug")) app.addHook("onResponse", async (request, reply) => {
    options.logger.debug({ method: request.method, route: request.routeOptions.url ?? null, status: reply.statusCode, key: request.apiKey?.id ?? null, ms: Math.round(reply.elapsedTime * 10) / 10 }, "http request");
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "grouparoo-stream", description: "The running daemon's REST API: status, records, groups, Runs, exports and dead letters.", version: "v1" },
      components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "An apiKey object's key (its ${VAR}'s value)." } } },
      security: [{ apiKey: [] }],
    },
  });

  // The operational endpoints keep the text answers they always had.
  registerProbes(app, backend, options.metricsAuth ?? false);

  app.get("/", { schema: { hide: true }, config: { guard: { topic: "status", access: "read", page: true } } }, async (_request, reply) => {
    const status = await backend.status();
    return reply.type("text/html; charset=utf-8").header("cache-control", "no-store").header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:").send(renderStatusPage(status));
  });

  await app.register(async (api) => registerApiRoutes(api as unknown as Api, backend), { prefix: "/api/v1" });
  app.get("/api/v1/openapi.json", { schema: { hide: true }, config: { guard: {} } }, async () => app.swagger());
  return app as unknown as Api;
}

export async function startHttpServer(backend: ApiBackend, options: HttpOptions): Promise<Api> {
  const app = await buildHttpServer(backend, options);
  await app.listen({ host: options.listen.host, port: options.listen.port });
  return app;
}
