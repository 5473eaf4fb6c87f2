// The routes of /api/v1: each with its TypeBox schemas (checked on the way in, published in the
// OpenAPI document) and its topic and access (server.ts decides who may). Reads go straight to the
// state (LMDB readers are cheap; every read here is synchronous, so no read transaction outlives a
// request's turn of the event loop); writes go through the daemon's pipeline (ApiBackend.perform), in
// turn with the batches, so the daemon stays the only writer. The work itself is the commands' own
// (streams/inspect.ts, streams/operations.ts, rebuildRequests), not a copy of it.
import { Type, type TSchema } from "@sinclair/typebox";
import type { Domain } from "../../core/domain.js";
import type { API_TOPICS } from "../../core/config/schema.js";
import { deadLettersPage, exportsPage, findRecord, recordView, selectForReplay, uniqueProperties, type DeadLetterKind, type ExportState } from "../../streams/inspect.js";
import { deleteDeadLetters, replayDeadLetters, retryExports, unreplayable } from "../../streams/operations.js";
import { listRuns } from "../../streams/runs.js";
import type { StoredDeadLetter } from "../../state/store.js";
import { rebuildRequests } from "../../core/rebuild.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { badRequest, conflict, notFound, unavailable } from "./errors.js";
import type { Api, ApiBackend, RouteAccess } from "./server.js";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** Most dead letters one replay request selects with `all` (the rest: another request). */
const MAX_REPLAY = 10_000;

const Id = (what: string) => Type.String({ minLength: 1, maxLength: 256, description: `Id of the ${what}.` });
const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, description: `At most this many (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}).` }));
const Cursor = Type.Optional(Type.String({ maxLength: 512, description: "nextCursor of the previous page, as it was handed out." }));
const Seq = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: "A dead letter's seq." });
const Instant = Type.Union([Type.String({ minLength: 1, description: "ISO-8601" }), Type.Integer({ minimum: 0, description: "epoch milliseconds" })]);
const Anything = (description: string) => Type.Unknown({ description });
const errors = { 400: Type.Ref("Error"), 401: Type.Ref("Error"), 403: Type.Ref("Error"), 404: Type.Ref("Error"), 409: Type.Ref("Error"), 503: Type.Ref("Error") };
const response = (description: string, more: Record<number, TSchema> = {}) => ({ 200: Anything(description), ...errors, ...more });
const guard = (topic: (typeof API_TOPICS)[number], access: "read" | "write"): { config: { guard: RouteAccess } } => ({ config: { guard: { topic, access } } });

const LOOKUP = "Exactly one: a unique property id (or grouparooId) and its value.";
const LOOKUP_PARAMETER = Type.Object(
  { lookup: Type.Object({}, { additionalProperties: Type.String(), description: `${LOOKUP} Sent as ?{propertyId}={value}, e.g. ?email=ada@example.com.` }) },
  { style: "form", explode: true },
);

const instantOf = (value: string | number | undefined, name: string, fallback: number): number => {
  if (value === undefined) return fallback;
  const ms = typeof value === "number" ? value : /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw badRequest(`${name} must be an ISO-8601 time or epoch milliseconds (got ${JSON.stringify(value)})`);
  return ms;
};

export function registerApiRoutes(api: Api, backend: ApiBackend): void {
  const { store } = backend;
  const domainOf = (): Domain => {
    const domain = backend.domain();
    if (!domain) throw unavailable(backend.notServing());
    return domain;
  };

  api.get("/status", { ...guard("status", "read"), schema: { operationId: "getStatus", summary: "The daemon's status: sources, destinations, groups, Runs, version, uptime.", tags: ["status"], response: response("DaemonStatus") } }, async () => backend.status());

  // --- Records ------------------------------------------------------------------------------

  api.get(
    "/records/:modelId",
    {
      schema: {
        operationId: "getRecord",
        summary: "One record, looked up by one unique property's value (?email=ada@example.com) or by ?grouparooId=.",
        description: "Its properties with their invalid reasons, its groups, and per destination what it acknowledged, what is queued and its last answer.",
        tags: ["records"],
        params: Type.Object({ modelId: Id("model") }),
        querystring: Type.Record(Type.String(), Type.String(), { description: LOOKUP }),
        response: response("{record: RecordView}"),
      },
      // The OpenAPI document lists a query string's properties as parameters, and this one has none
      // of its own (any unique property of the model): it is published as one free-form parameter,
      // an object exploded into the query string (OpenAPI 3.0's form style).
      config: { ...guard("record", "read").config, swaggerTransform: ({ schema, url }) => ({ url, schema: { ...schema, querystring: LOOKUP_PARAMETER } }) },
    },
    async (request) => {
      const domain = domainOf();
      const { modelId } = request.params;
      if (!domain.models.has(modelId)) throw notFound(`no model "${modelId}"`, "UNKNOWN_MODEL");
      const query = Object.entries(request.query);
      if (query.length !== 1) {
        const uniques = uniqueProperties(domain, modelId);
        throw badRequest(`give exactly one unique property and its value (one of ${[...uniques, "grouparooId"].join(", ")}), e.g. ?${uniques[0] ?? "grouparooId"}=...; got ${query.length}`);
      }
      const [propertyId, value] = query[0] as [string, string];
      const found = findRecord(store, domain, modelId, propertyId, value);
      if ("problem" in found) {
        if (found.problem === "not-found") throw notFound(found.message, "RECORD_NOT_FOUND");
        throw badRequest(found.message, found.problem === "invalid" ? "INVALID_VALUE" : "NOT_A_UNIQUE_PROPERTY");
      }
      const record = recordView(store, domain, modelId, found.recordId);
      if (!record) throw notFound(`no ${modelId} record with ${propertyId} ${JSON.stringify(value)}`, "RECORD_NOT_FOUND");
      return { record };
    },
  );

  // --- Groups -------------------------------------------------------------------------------

  api.get("/groups", { ...guard("group", "read"), schema: { operationId: "listGroups", summary: "Every group with its model, match type, rule count and size.", tags: ["groups"], response: response("{groups: [...]}") } }, async () => {
    const domain = domainOf();
    return {
      groups: [...domain.groups.values()].map((g) => ({ id: g.id, modelId: g.modelId, matchType: g.matchType, rules: g.rules.length, members: store.countOf("members", g.id) })),
    };
  });

  api.get(
    "/groups/:groupId/members",
    {
      ...guard("group", "read"),
      schema: {
        operationId: "listGroupMembers",
        summary: "A page of a group's members (record ids) in record order.",
        description: `Follow nextCursor until it is null. A page holds at most limit members and may hold fewer (a page reads at most 20,000 records): only a null nextCursor means the end. Records joining or leaving meanwhile never shift a page.`,
        tags: ["groups"],
        params: Type.Object({ groupId: Id("group") }),
        querystring: Type.Object({ cursor: Cursor, limit: Limit }, { additionalProperties: false }),
        response: response("{groupId, modelId, members: string[], nextCursor: string | null}"),
      },
    },
    async (request) => {
      const domain = domainOf();
      const { groupId } = request.params;
      const group = domain.groups.get(groupId);
      if (!group) throw notFound(`no group "${groupId}"`, "UNKNOWN_GROUP");
      // "group-members": state layout 4 orders integer ids by value; a cursor of the text order before it ("members:") is refused.
      const over = `group-members:${groupId}`;
      const after = decodeCursor(request.query.cursor, over, "string", { over: `members:${groupId}`, why: "members are now listed with integer ids by value, not as text" });
      const page = store.membersAfter(group.modelId, groupId, after, request.query.limit ?? DEFAULT_LIMIT, 20_000);
      return { groupId, modelId: group.modelId, members: page.ids, nextCursor: page.more && page.last !== undefined ? encodeCursor(over, page.last) : null };
    },
  );

  // --- Runs ---------------------------------------------------------------------------------

  api.get(
    "/runs",
    {
      ...guard("run", "read"),
      schema: {
        operationId: "listRuns",
        summary: "The Runs of the state, oldest first (optionally of one state).",
        tags: ["runs"],
        querystring: Type.Object({ state: Type.Optional(Type.Union(["queued", "running", "complete", "failed", "superseded", "stopped"].map((s) => Type.Literal(s)))) }, { additionalProperties: false }),
        response: response("{runs: RunState[]}"),
      },
    },
    async (request) => ({ runs: listRuns(store).filter((r) => request.query.state === undefined || r.state === request.query.state) }),
  );

  api.get(
    "/runs/:runId",
    { ...guard("run", "read"), schema: { operationId: "getRun", summary: "One Run: its kind, target, state and progress.", tags: ["runs"], params: Type.Object({ runId: Id("run") }), response: response("{run: RunState}") } },
    async (request) => {
      const run = listRuns(store).find((r) => r.id === request.params.runId);
      if (!run) throw notFound(`no run "${request.params.runId}"`, "RUN_NOT_FOUND");
      return { run };
    },
  );

  api.post(
    "/runs",
    {
      ...guard("run", "write"),
      schema: {
        operationId: "startRuns",
        summary: "Start Runs, as `grouparoo-stream rebuild` asks for them: a property recomputed, a source read again, a group evaluated over every record, a destination's exports planned again, or all of them.",
        tags: ["runs"],
        body: Type.Object(
          {
            property: Type.Optional(Id("property to recompute")),
            source: Type.Optional(Id("source to read again")),
            group: Type.Optional(Id("group to evaluate over every record")),
            destination: Type.Optional(Id("destination whose exports to plan again")),
            all: Type.Optional(Type.Literal(true, { description: "every source, then every group and destination" })),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { ...response("{runs: RunState[]}"), 202: Anything("{runs: RunState[]}") },
      },
    },
    async (request, reply) => {
      const domain = domainOf();
      if (request.body.all && Object.keys(request.body).length > 1) throw badRequest('"all" asks for every Run: give it alone, or name the property, source, group or destination without it');
      const requests = rebuildRequests(domain, request.body);
      if (!Array.isArray(requests)) throw requests.unknown ? notFound(requests.message, `UNKNOWN_${requests.unknown.toUpperCase()}`) : badRequest(requests.message);
      const runs = await backend.requestRuns(requests, `asked for through the API (key ${request.apiKey?.id ?? "none: --api-insecure"})`);
      return reply.code(202).send({ runs });
    },
  );

  api.delete(
    "/runs/:runId",
    { ...guard("run", "write"), schema: { operationId: "stopRun", summary: "Stop a queued or running Run (what it committed stays; a config change's Run is planned again by the next restart or reload).", tags: ["runs"], params: Type.Object({ runId: Id("run") }), response: response("{run: RunState}") } },
    async (request) => ({ run: await backend.stopRun(request.params.runId) }),
  );

  // --- Exports ------------------------------------------------------------------------------

  api.get(
    "/exports",
    {
      ...guard("export", "read"),
      schema: {
        operationId: "listExports",
        summary: "A page of a destination's exports: queued (in the outbox), retrying (queued after a failed attempt) or failed (dead-lettered).",
        tags: ["exports"],
        querystring: Type.Object(
          {
            destinationId: Id("destination"),
            state: Type.Optional(Type.Union([Type.Literal("queued"), Type.Literal("retrying"), Type.Literal("failed")], { description: "default queued" })),
            cursor: Cursor,
            limit: Limit,
          },
          { additionalProperties: false },
        ),
        response: response("{destinationId, state, exports: [...], nextCursor: string | null}"),
      },
    },
    async (request) => {
      const { destinationId, state = "queued", cursor, limit = DEFAULT_LIMIT } = request.query;
      if (!domainOf().destinations.has(destinationId)) throw notFound(`no destination "${destinationId}"`, "UNKNOWN_DESTINATION");
      const over = `exports:${destinationId}:${state}`;
      const page = exportsPage(store, destinationId, state as ExportState, decodeCursor(cursor, over, "number"), limit);
      return { destinationId, state, exports: page.exports, nextCursor: page.more && page.last !== undefined ? encodeCursor(over, page.last) : null };
    },
  );

  api.post(
    "/exports/retry",
    {
      ...guard("export", "write"),
      schema: {
        operationId: "retryExports",
        summary: "Retry a destination's dead-lettered exports (as `retry-exports` does): each record's export is planned afresh from the record as it is now.",
        tags: ["exports"],
        body: Type.Object(
          {
            destinationId: Id("destination"),
            since: Type.Optional(Instant),
            until: Type.Optional(Instant),
            seqs: Type.Optional(Type.Array(Seq, { minItems: 1, maxItems: MAX_LIMIT, description: "only these dead letters" })),
          },
          { additionalProperties: false },
        ),
        response: response("{destinationId, requeued: number}"),
      },
    },
    async (request) => {
      const domain = domainOf();
      const { destinationId, seqs } = request.body;
      const destination = domain.destinations.get(destinationId);
      if (!destination) throw notFound(`no destination "${destinationId}" in the config`, "UNKNOWN_DESTINATION");
      const from = instantOf(request.body.since, "since", 0);
      const to = instantOf(request.body.until, "until", Number.MAX_SAFE_INTEGER);
      if (from > to) throw badRequest("since is after until");
      if (seqs) {
        const missing = seqs.filter((seq) => {
          const letter = store.deadLetterOf(seq);
          return letter?.kind !== "export" || letter.destinationId !== destinationId;
        });
        if (missing.length > 0) throw notFound(`no dead-lettered export of destination "${destinationId}" with seq ${missing.join(", ")}`, "UNKNOWN_DEAD_LETTER");
      }
      const wanted = seqs ? new Set(seqs) : undefined;
      const requeued = await backend.perform({ run: async () => ({ value: await retryExports(store, destination, (l) => l.at >= from && l.at <= to && (!wanted || wanted.has(l.seq))) }) });
      return { destinationId, requeued };
    },
  );

  // --- Dead letters -------------------------------------------------------------------------

  /**
   * A component filter names a source or destination of the running config, or one that has dead
   * letters (those of a component removed from the config stay listed and replayable by name).
   */
  const knownComponent = (component: string): void => {
    const domain = backend.domain();
    if (domain && (domain.sources.has(component) || domain.destinations.has(component))) return;
    if (store.hasDeadLettersOf(component)) return;
    if (!domain) throw unavailable(backend.notServing());
    throw notFound(`no source or destination "${component}" in the config, and no dead letter of one`, "UNKNOWN_COMPONENT");
  };

  const Kind = Type.Optional(Type.Union([Type.Literal("change"), Type.Literal("message"), Type.Literal("export")], { description: "change: what sources set aside (with message); message: undecodable input; export: exports destinations rejected" }));
  api.get(
    "/dead-letters",
    {
      ...guard("deadLetter", "read"),
      schema: {
        operationId: "listDeadLetters",
        summary: "A page of dead letters, oldest first, with their reasons.",
        tags: ["deadLetters"],
        querystring: Type.Object({ kind: Kind, component: Type.Optional(Id("source or destination")), cursor: Cursor, limit: Limit }, { additionalProperties: false }),
        response: response("{deadLetters: DeadLetterView[], nextCursor: string | null}"),
      },
    },
    async (request) => {
      const { kind, component, cursor, limit = DEFAULT_LIMIT } = request.query;
      if (component !== undefined) knownComponent(component);
      const over = `dead-letters:${kind ?? "*"}:${component ?? "*"}`;
      const page = deadLettersPage(store, { ...(kind ? { kind: kind as DeadLetterKind } : {}), ...(component ? { component } : {}) }, decodeCursor(cursor, over, "number"), limit);
      return { deadLetters: page.deadLetters, nextCursor: page.more && page.last !== undefined ? encodeCursor(over, page.last) : null };
    },
  );

  api.post(
    "/dead-letters/replay",
    {
      ...guard("deadLetter", "write"),
      schema: {
        operationId: "replayDeadLetters",
        summary: "Replay dead letters: changes are applied again (their stream's position stays), exports are planned afresh and queued; each replayed letter leaves the store.",
        description: "Name them by seqs (all must exist and be replayable, or nothing happens), or all: true with an optional kind and component (up to 10,000 per request; those that cannot be replayed are listed as skipped). Messages a source could not decode cannot be replayed.",
        tags: ["deadLetters"],
        body: Type.Object(
          {
            seqs: Type.Optional(Type.Array(Seq, { minItems: 1, maxItems: MAX_LIMIT })),
            all: Type.Optional(Type.Literal(true)),
            kind: Kind,
            component: Type.Optional(Id("source or destination")),
          },
          { additionalProperties: false },
        ),
        response: response("{changes: number, failedAgain: number, exports: {destinationId: number}, skipped: [{seq, reason}]}"),
      },
    },
    async (request) => {
      const domain = domainOf();
      const { seqs, all, kind, component } = request.body;
      if ((seqs === undefined) === (all === undefined)) throw badRequest("name the dead letters: seqs: [...], or all: true (with kind and component to narrow it)");
      if (seqs && (kind !== undefined || component !== undefined)) throw badRequest("kind and component narrow all: true; with seqs, name the seqs only");
      if (component !== undefined) knownComponent(component);
      let letters: StoredDeadLetter[];
      if (seqs) {
        const found = seqs.map((seq) => [seq, store.deadLetterOf(seq)] as const);
        const missing = found.filter(([, l]) => !l).map(([seq]) => seq);
        if (missing.length > 0) throw notFound(`no dead letter with seq ${missing.join(", ")}`, "UNKNOWN_DEAD_LETTER");
        letters = found.map(([, l]) => l as StoredDeadLetter);
        const refused = letters.flatMap((l) => {
          const reason = unreplayable(l, domain);
          return reason === null ? [] : [`${l.seq}: ${reason}`];
        });
        if (refused.length > 0) throw conflict(`cannot replay ${refused.join("; ")}`, "NOT_REPLAYABLE");
      } else {
        letters = await selectForReplay(store, { ...(kind ? { kind } : {}), ...(component ? { component } : {}) }, (l) => unreplayable(l, domain) === null, MAX_REPLAY);
      }
      const outcome = await backend.perform({
        run: async () => {
          const done = await replayDeadLetters(store, domain, letters);
          return { value: { changes: done.changes, failedAgain: done.failedAgain, exports: done.exports, skipped: done.skipped }, ...(done.result ? { result: done.result } : {}) };
        },
      });
      return outcome;
    },
  );

  api.delete(
    "/dead-letters/:seq",
    { ...guard("deadLetter", "write"), schema: { operationId: "deleteDeadLetter", summary: "Drop one dead letter.", tags: ["deadLetters"], params: Type.Object({ seq: Seq }), response: response("{deleted: seq}") } },
    async (request) => {
      const { seq } = request.params;
      if (!store.deadLetterOf(seq)) throw notFound(`no dead letter with seq ${seq}`, "UNKNOWN_DEAD_LETTER");
      const deleted = await backend.perform({ run: async () => ({ value: await deleteDeadLetters(store, [seq]) }) });
      if (deleted.length === 0) throw notFound(`no dead letter with seq ${seq}`, "UNKNOWN_DEAD_LETTER");
      return { deleted: seq };
    },
  );
}
