// Runs: the work a config change needs over what the state already holds (core/definitions.ts plans
// them), done one Run at a time between batches of changes. A Run over the state is chunked work: each
// chunk, its progress and (with the last chunk) the definitions it brings the state to commit in one
// transaction, so a Run survives a SIGKILL and resumes where it stopped. A re-read is driven by the
// source's connector: its rows and progress markers flow through the pipeline like every change.
import type { Logger } from "pino";
import { applyRowChange, emptyAggregate, type AggregateState, type BatchApplier, type BatchResult } from "../core/apply.js";
import { comparableUpdate, cutShort, DEFINITION_CLASSES, modelOf, planRuns, unsettledWithoutOperational, withoutOperational, type OperationalOptions, requestedRunChanged, requestedRunObsolete, runCovers, type DefinitionUpdate, type Definitions, type PlannedRun, type RunKind, type RunPlan, type RunSpec, type Unsettled } from "../core/definitions.js";
import type { Domain } from "../core/domain.js";
import type { SourceConnector } from "../connectors/types.js";
import type { StateTransaction, Store } from "../state/store.js";
import { applyBatch, backfillChunk } from "./batch.js";
import type { ChunkedWork, CommittedBatch } from "./pipeline.js";

export type RunStatus = "queued" | "running" | "complete" | "failed" | "superseded" | "stopped";

/** Why a Run cannot be stopped. */
export class RunStopError extends Error {
  constructor(
    readonly code: "RUN_NOT_FOUND" | "RUN_FINISHED" | "RUN_NOT_STOPPABLE",
    message: string,
  ) {
    super(message);
    this.name = "RunStopError";
  }
}

export interface RunState {
  id: string;
  kind: RunKind;
  target: string;
  reason: string;
  spec: RunSpec;
  /** The spec it was planned with, when it changed on the way (a rebuild read again instead): the plan it still answers. */
  plannedAs?: RunSpec;
  updates: DefinitionUpdate[];
  state: RunStatus;
  /** Items done (records, rows, entries) and, when known, how many there are. */
  processed: number;
  total: number | null;
  /** Where the Run resumes: its phase and the last key done in it. */
  phase: number;
  cursor?: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  error?: string;
}

export interface RunEvents {
  started?(run: RunState): void;
  progressed?(run: RunState, items: number): void;
  /** What one chunk did to records, groups and exports (as a batch of changes reports it). */
  applied?(run: RunState, result: BatchResult): void;
  finished?(run: RunState): void;
}

const RECORDS_PER_CHUNK = 500;
const KEYS_PER_CHUNK = 5000;
/** Records written per transaction from a rebuild's scanned states, or evaluated by a backfill (cheap per record, so more of them). */
const SCANNED_RECORDS_PER_CHUNK = 2000;
/** Awaited before each Run starts (a test holds the Runs back with it, to order them against the sources); none by default. */
export const RUN_HOOKS: { beforeBegin?: (run: RunState, store: Store) => Promise<void> } = {};
const LOG_EVERY_MS = 5000;
/** The position stream a re-read reports its progress on (in the transaction of the rows it read). */
export const runStream = (runId: string) => `run:${runId}`;
export const RUN_COMPLETE = "complete";

/**
 * A re-read's last position: "complete", or its last progress with `complete: true` (so the rows of
 * the last chunk are counted even when they commit in the batch that ends the Run).
 */
export function runComplete(position: string): boolean {
  return position === RUN_COMPLETE || runProgress(position).complete === true;
}

/**
 * What a re-read's position says of its progress. Positions are the connector's opaque resume points:
 * a JSON object may carry `rows` (read so far) and `complete`; anything else (an empty position before
 * the first chunk, an offset) says nothing, and never fails.
 */
export function runProgress(position: string): { rows?: number; complete?: boolean } {
  if (!position.startsWith("{")) return {};
  try {
    const parsed = JSON.parse(position) as unknown;
    if (typeof parsed !== "object" || parsed === null) return {};
    const { rows, complete } = parsed as { rows?: unknown; complete?: unknown };
    return { ...(typeof rows === "number" && Number.isFinite(rows) ? { rows } : {}), ...(complete === true ? { complete: true } : {}) };
  } catch {
    return {};
  }
}

/** Whether a Run was asked for by hand (Runs.request), not planned from a config change. */
export function isRequested(run: RunState): boolean {
  return /^[0-9a-z]+-req\d+-/.test(run.id);
}

/** The Runs of the state (meta entries `run:<id>`), oldest first. */
export function listRuns(store: Store): RunState[] {
  return store.metaWithPrefix<RunState>("run:").sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
}

/**
 * The re-reads part-way (running, or queued with the progress of an earlier start: a Run kept at a start
 * waits, queued, behind those the config change planned, maybe through more starts), by source: their
 * source connector marks the rows it streams from its first one (SourceContext), so that a change
 * streamed before the Run resumes does not leave a row it read unmarked (its sweep would remove it).
 * A re-read that has not read anything yet is marked from when it starts. One that this start then
 * supersedes keeps its mark on that source's rows for the generation, which no sweep uses.
 */
export function rereadsUnderWay(store: Store): { runId: string; sourceIds: string[] }[] {
  const under: { runId: string; sourceIds: string[] }[] = [];
  for (const run of listRuns(store)) {
    if ((run.state !== "running" && run.state !== "queued") || run.spec.kind !== "reread") continue;
    const position = store.position(runStream(run.id));
    if (position === undefined || runComplete(position)) continue;
    // One re-read part-way per source (a second of the same source is superseded as the same work).
    if (under.some((u) => u.sourceIds.includes((run.spec as { sourceId: string }).sourceId))) continue;
    under.push({ runId: run.id, sourceIds: [run.spec.sourceId] });
  }
  return under;
}

/** The definitions the state records (meta entries def:<class>:<id>), or undefined when it records none. */
export function storedDefinitions(store: Store, operational?: OperationalOptions): Definitions | undefined {
  const entries = store.definitionEntries();
  if (entries.length === 0) return undefined;
  const definitions: Definitions = { models: {}, sources: {}, properties: {}, groups: {}, destinations: {} };
  for (const [key, value] of entries) {
    const [, cls, ...id] = key.split(":");
    if ((DEFINITION_CLASSES as readonly string[]).includes(cls ?? "")) (definitions[cls as keyof Definitions] as Record<string, unknown>)[id.join(":")] = value;
  }
  return withoutOperational(definitions, operational);
}

/** Why a Run an earlier config planned is superseded. */
const CONFIG_CHANGED = "the config changed before it was done (what it changed is redone if this config wants something else of it)";

/** Meta entries `unsettled:<class>:<id>`: what planned Runs are bringing objects to (core/definitions.ts, Unsettled). */
const UNSETTLED = "unsettled:";

function writeUpdates(tx: StateTransaction, updates: readonly DefinitionUpdate[], operational: OperationalOptions | undefined): void {
  for (const u of updates) {
    const key = `def:${u.cls}:${u.id}`;
    if (u.definition === null) tx.deleteMeta(key);
    else tx.putMeta(key, u.definition);
    // Its target recorded, the object is settled. Its removal recorded on the way to its target (removed,
    // then added again), nothing of it is left in the state: from then on it is only added, not redone.
    const entryKey = `${UNSETTLED}${u.cls}:${u.id}`;
    const stored = tx.getMeta<Unsettled>(entryKey);
    if (!stored) continue;
    // Compared as the definitions are: its target may name operational options a later version leaves out.
    const entry = unsettledWithoutOperational([stored], operational)[0] as Unsettled;
    if (JSON.stringify(entry.target) === JSON.stringify(u.definition)) tx.deleteMeta(entryKey);
    else if (u.definition === null && entry.redo) tx.putMeta(entryKey, { ...stored, redo: false });
  }
}

/**
 * Marks what a plan changes as unsettled, before any of its Runs' chunks and before the sources read
 * under the new config, so that a config undoing the change before it is recorded finds it cut short:
 * every object the plan records (its Runs' and the others, recorded when the Runs are done: a source
 * its connector reads whole anyway streams rows meanwhile), with the definition recorded last as its
 * target. What the plan no longer changes is settled (no entry); a plan with no Runs records everything
 * at once.
 */
function markUnsettled(tx: StateTransaction, recorded: Definitions, next: Definitions, previous: readonly Unsettled[], plan: RunPlan, beforeStart = false): void {
  const before = new Map(previous.map((u) => [`${u.cls}:${u.id}`, u]));
  const redone = cutShort(previous, next);
  const entries = new Map<string, Unsettled>();
  if (plan.runs.length > 0 || beforeStart) {
    for (const u of [...plan.runs.flatMap((r) => r.updates), ...plan.updates]) {
      const key = `${u.cls}:${u.id}`;
      const earlier = before.get(key);
      const seen = u.definition ?? entries.get(key)?.seen ?? recorded[u.cls][u.id] ?? earlier?.seen;
      if (seen === undefined) continue;
      entries.set(key, { cls: u.cls, id: u.id, target: u.definition, seen, redo: redone(u.cls, u.id, modelOf(u.cls, u.id, seen)) });
    }
  }
  for (const key of before.keys()) if (!entries.has(key)) tx.deleteMeta(`${UNSETTLED}${key}`);
  for (const [key, entry] of entries) if (JSON.stringify(entry) !== JSON.stringify(before.get(key))) tx.putMeta(`${UNSETTLED}${key}`, entry);
}

export interface RunsContext {
  store: Store;
  domain: Domain;
  /** Queues chunked work in the pipeline (between batches of changes). */
  schedule(work: ChunkedWork): void;
  /** The connector reading a source, for re-reads. */
  connectorOf(sourceId: string): SourceConnector | undefined;
  logger: Logger;
  events?: RunEvents;
  clock?: () => number;
  /**
   * True while a destination's outbox holds its bound (until it is below half, as for the sources): a
   * chunk that plans exports waits meanwhile, so a Run over every record fills the outbox no further
   * than one chunk past its bound. The default never holds.
   */
  exportsHeld?: () => boolean;
  /** The operational options of each source and destination type, left out of every definition compared (see core/definitions.ts). */
  operational?: OperationalOptions;
}

/** How often a Run waiting for the outboxes looks again. */
const HELD_RECHECK_MS = 100;

/** Executes the Runs of a plan, one at a time, in order. */
export class Runs {
  private queue: RunState[] = [];
  private current: RunState | undefined;
  private stopped = false;
  private lastLog = 0;
  private lastLogged = 0;
  private finalUpdates: DefinitionUpdate[] = [];
  private idleWaiters: (() => void)[] = [];
  /** When a re-read's progress was last stored (committed()). */
  private rereadStoredAt = 0;
  private removalWaiters: (() => void)[] = [];
  private requested = 0;
  /** The config's definitions being written (between the last planned Run and the next one). */
  private recording = false;
  /** start() has not queued its Runs yet: a Run asked for meanwhile waits behind them. */
  private starting = true;
  private readonly clock: () => number;
  /** The row-store scan of a rebuild in progress: its position and the states per record so far. */
  private scan: { runId: string; after: string | undefined; done: boolean; states: Map<string, Map<string, AggregateState>> } | undefined;

  constructor(private readonly context: RunsContext) {
    this.clock = context.clock ?? Date.now;
  }

  /**
   * Plans the Runs from the stored definitions to `next`, resumes a Run of the state that does the same
   * work (after a crash or a restart), supersedes the others, and starts the first.
   */
  async start(next: Definitions, needsReread: (sourceId: string) => boolean, isEmpty: boolean): Promise<RunPlan> {
    const { store, logger } = this.context;
    const recorded = storedDefinitions(store, this.context.operational);
    const stored = this.baseline(next, isEmpty, true, recorded);
    if (stored === undefined) {
      // A new state: what it will hold is read under these definitions from the start.
      await store.transact((tx) => writeUpdates(tx, allUpdates(next), this.context.operational));
      this.starting = false;
      this.next();
      return { runs: [], updates: [] };
    }
    const unsettled = this.unsettled();
    const plan = planRuns(stored, next, { needsReread, unsettled });
    const existing = listRuns(store).filter((r) => r.state === "running" || r.state === "queued");
    const runs: RunState[] = [];
    const superseded: { run: RunState; why: string; again?: RunState }[] = [];
    /** Runs of an earlier config that this one does not plan. */
    const replaced: RunState[] = [];
    const now = this.clock();
    await store.transact((tx) => {
      let n = 0;
      for (const planned of plan.runs) {
        const resumed = existing.find((r) => sameWork(r, planned, this.context.operational));
        if (resumed) {
          // It records what this version records (see sameWork).
          const same = JSON.stringify(resumed.updates) === JSON.stringify(planned.updates);
          const kept = same ? resumed : { ...resumed, updates: planned.updates };
          if (!same) tx.putMeta(`run:${kept.id}`, kept);
          runs.push(kept);
          continue;
        }
        const id = `${now.toString(36)}-${String(n++).padStart(3, "0")}-${planned.spec.kind}`;
        const run: RunState = { id, kind: planned.spec.kind, target: planned.target, reason: planned.reason, spec: planned.spec, updates: planned.updates, state: "queued", processed: 0, total: null, phase: 0, createdAt: now };
        tx.putMeta(`run:${id}`, run);
        runs.push(run);
      }
      // A Run asked for by hand is planned by no config change: it stays, after the planned ones, unless
      // what it is about left the config or a planned Run does the same work. It keeps its progress
      // while what it depends on is defined as before; otherwise that progress was made under the old
      // definition, and it starts again from the beginning, as a new Run (nothing of its old position).
      const planned = [...runs];
      for (const r of existing) {
        if (!isRequested(r) || runs.includes(r)) continue;
        const same = planned.find((q) => runCovers(q.spec, r.spec));
        const obsolete = same ? `run ${same.id} does the same work for the config change` : requestedRunObsolete(r.spec, next);
        if (obsolete !== undefined) {
          superseded.push({ run: r, why: obsolete });
          continue;
        }
        const changed = requestedRunChanged(r.spec, stored, next);
        if (changed === undefined) {
          // Waiting behind the planned Runs: queued, with its progress.
          const kept: RunState = { ...r, state: "queued" };
          tx.putMeta(`run:${r.id}`, kept);
          runs.push(kept);
          continue;
        }
        // A new id (no position of the old one applies), its place in the order kept (createdAt).
        const again: RunState = { ...r, id: `${now.toString(36)}-req${String(this.requested++).padStart(3, "0")}-${r.kind}`, state: "queued", processed: 0, total: null, phase: 0 };
        delete again.cursor;
        delete again.startedAt;
        delete again.error;
        tx.putMeta(`run:${again.id}`, again);
        runs.push(again);
        superseded.push({ run: r, why: `the config changed ${changed}: asked for again as run ${again.id}`, again });
      }
      for (const r of existing) {
        if (runs.some((q) => q.id === r.id)) continue;
        const why = superseded.find((s) => s.run === r)?.why;
        if (why === undefined) replaced.push(r);
        tx.putMeta(`run:${r.id}`, { ...r, state: "superseded", finishedAt: now, error: `superseded: ${why ?? CONFIG_CHANGED}` });
        // Never resumed (a Run asked for again has an id of its own): its re-read's position goes with it.
        tx.deletePosition(runStream(r.id));
      }
      // A state that recorded no definitions records those it is taken to have, so that the next start
      // compares with them (not with nothing: every source would look new); the Runs record the rest.
      if (recorded === undefined) writeUpdates(tx, allUpdates(stored), this.context.operational);
      // The positions of re-reads whose Run ended, which versions before 2026-12-03 kept: none resumes from them.
      for (const stream of store.allPositions().keys()) if (stream.startsWith("run:") && !runs.some((r) => runStream(r.id) === stream)) tx.deletePosition(stream);
      markUnsettled(tx, stored, next, unsettled, plan);
      if (plan.runs.length === 0) writeUpdates(tx, plan.updates, this.context.operational);
    });
    for (const run of replaced) logger.warn({ run: run.id, kind: run.kind, target: run.target, processed: run.processed, reason: CONFIG_CHANGED }, "run superseded");
    for (const { run, why, again } of superseded) {
      if (again) logger.warn({ run: run.id, kind: run.kind, target: run.target, reason: why, again: again.id }, "run asked for by hand starts again: what it depends on changed");
      else logger.warn({ run: run.id, kind: run.kind, target: run.target, reason: why }, "run asked for by hand superseded: it no longer applies to this config");
    }
    // Asked for while this start was planning (the API, a request left by `rebuild`): after these.
    this.queue = [...runs, ...this.queue.filter((q) => !runs.some((r) => r.id === q.id))];
    this.starting = false;
    this.finalUpdates = plan.runs.length === 0 ? [] : plan.updates;
    for (const run of runs) logger.info({ run: run.id, kind: run.kind, target: run.target, reason: run.reason, resumed: run.processed > 0 || run.cursor !== undefined }, "run planned");
    this.next();
    return plan;
  }

  /**
   * Marks what the plan towards `next` changes as unsettled (start() marks it again with its Runs), to
   * be called before the sources read under `next`: a process that dies between the two has streamed
   * changes under the new config, and a config that undoes it must still find the change cut short.
   */
  async prepare(next: Definitions, needsReread: (sourceId: string) => boolean): Promise<void> {
    const { store } = this.context;
    const recorded = storedDefinitions(store, this.context.operational);
    if (recorded === undefined) return;
    const unsettled = this.unsettled();
    const plan = planRuns(recorded, next, { needsReread, unsettled });
    if (plan.runs.length === 0 && plan.updates.length === 0) return;
    await store.transact((tx) => markUnsettled(tx, recorded, next, unsettled, plan, true));
  }

  /** The plan start() would follow, without writing anything (a worker checks it can carry it out first). */
  plan(next: Definitions, needsReread: (sourceId: string) => boolean, isEmpty: boolean): RunPlan {
    const stored = this.baseline(next, isEmpty, false);
    return stored === undefined ? { runs: [], updates: [] } : planRuns(stored, next, { needsReread, unsettled: this.unsettled() });
  }

  /**
   * The definitions the state was built with; undefined for a new state (it records the config's). A
   * state from before definitions were recorded is taken to match the config, except the groups, whose
   * fingerprints it did record.
   */
  /** What the state marks unsettled, compared as the definitions are (without operational options). */
  private unsettled(): Unsettled[] {
    const { store, operational } = this.context;
    return unsettledWithoutOperational(store.metaWithPrefix<Unsettled>(UNSETTLED), operational, storedDefinitions(store));
  }

  private baseline(next: Definitions, isEmpty: boolean, warn: boolean, stored = storedDefinitions(this.context.store, this.context.operational)): Definitions | undefined {
    const { store, logger } = this.context;
    if (stored !== undefined || isEmpty) return stored;
    if (warn) logger.warn("the state records no definitions (an older version wrote it): taking it to match this config, groups excepted");
    const taken: Definitions = { ...next, groups: {} };
    for (const [id, group] of Object.entries(next.groups)) if (store.getMeta<string>(`group:${id}`) === group.fingerprint) taken.groups[id] = group;
    return taken;
  }

  /**
   * Queues a Run asked for by hand (grouparoo-stream rebuild, the API). `consumes`: the meta entry of
   * the request it answers (`rebuild` leaves one), removed in the transaction that stores the Run, so
   * that a request is never gone without its Run (a crash between two transactions lost it).
   */
  async request(spec: RunSpec, target: string, reason: string, consumes?: string): Promise<RunState> {
    const now = this.clock();
    // Several asked for in one millisecond (rebuild --all) each get their own id; "-req" marks it asked for (isRequested).
    const run: RunState = { id: `${now.toString(36)}-req${String(this.requested++).padStart(3, "0")}-${spec.kind}`, kind: spec.kind, target, reason, spec, updates: [], state: "queued", processed: 0, total: null, phase: 0, createdAt: now };
    await this.context.store.transact((tx) => {
      tx.putMeta(`run:${run.id}`, run);
      if (consumes !== undefined) tx.deleteMeta(consumes);
    });
    this.queue.push(run);
    this.context.logger.info({ run: run.id, kind: run.kind, target: run.target, reason, resumed: false }, "run planned");
    // While start() plans, it queues this behind its Runs and starts the first.
    if (!this.current && !this.starting) this.next();
    return run;
  }

  /**
   * Stops one Run by hand (the API's DELETE /runs/{id}): a queued one leaves the queue, the one in
   * progress stops before its next chunk (what its chunks committed stays). A Run a config change
   * planned has not brought the state to its definitions: the next restart, or reload that applies a
   * config, plans it again (a reload of the config running restarts nothing).
   * A re-read in progress is driven by its source's connector and cannot be stopped.
   */
  async stopRun(id: string): Promise<RunState> {
    const run = this.current?.id === id ? this.current : this.queue.find((r) => r.id === id);
    if (!run) {
      const stored = this.context.store.getMeta<RunState>(`run:${id}`);
      if (!stored) throw new RunStopError("RUN_NOT_FOUND", `no run "${id}"`);
      throw new RunStopError("RUN_FINISHED", `run "${id}" is ${stored.state} already`);
    }
    if (run === this.current && run.kind === "reread") throw new RunStopError("RUN_NOT_STOPPABLE", `run "${id}" re-reads source ${run.spec.kind === "reread" ? run.spec.sourceId : "?"} and its connector cannot be interrupted; it stops with the daemon (and resumes after a restart)`);
    // Its definitions are not reached: nothing may record them as reached when the queue empties.
    if (run.updates.length > 0) this.finalUpdates = [];
    run.state = "stopped";
    run.finishedAt = this.clock();
    await this.context.store.transact((tx) => {
      tx.putMeta(`run:${run.id}`, run);
      // A queued re-read's position (it resumes no more): a fresh state has none.
      tx.deletePosition(runStream(run.id));
    });
    this.context.logger.info({ run: run.id, kind: run.kind, target: run.target, processed: run.processed, total: run.total }, "run stopped by hand");
    this.context.events?.finished?.(run);
    if (run === this.current) {
      // Not waiting for the chunk in flight: its step sees the state and moves on.
      this.current = undefined;
      this.scan = undefined;
      this.next();
    } else {
      this.queue = this.queue.filter((r) => r !== run);
      this.wakeRemovals();
    }
    return run;
  }

  /** Runs in progress or waiting (the current one first). */
  pending(): RunState[] {
    return [...(this.current ? [this.current] : []), ...this.queue];
  }

  /**
   * Resolves once start() has queued its Runs and none of them that removes something (remove-*) is
   * in progress or waiting any more (done, failed, stopped by hand): the sources its removals take
   * something of, read whole by their connector, start reading then (core/definitions.ts,
   * removedThenReadWhole). Never while the Runs are stopped (a reload or a drain).
   */
  removalsDone(): Promise<void> {
    return new Promise((resolve) => {
      this.removalWaiters.push(resolve);
      this.wakeRemovals();
    });
  }

  private wakeRemovals(): void {
    if (this.starting || this.stopped || this.removalWaiters.length === 0) return;
    const removing = (r: RunState | undefined) => r !== undefined && r.kind.startsWith("remove-") && r.state !== "stopped";
    if (removing(this.current) || this.queue.some(removing)) return;
    for (const wake of this.removalWaiters.splice(0)) wake();
  }

  /** Resolves when no Run is in progress or waiting. */
  idle(): Promise<void> {
    if (!this.current && !this.recording && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking Runs (a drain or a reload); the one in progress stops at its next chunk and resumes after a restart. */
  stop(): void {
    this.stopped = true;
  }

  /** Follows re-reads: their progress and completion arrive as positions of their run stream. */
  committed(batch: CommittedBatch): void {
    const run = this.current;
    if (!run || run.kind !== "reread") return;
    const position = batch.positions.get(runStream(run.id));
    if (position === undefined) return;
    if (position.startsWith("failed:")) {
      this.fail(run, new Error(position.slice("failed:".length)));
      return;
    }
    if (position !== RUN_COMPLETE) {
      const progress = runProgress(position);
      const items = (progress.rows ?? run.processed) - run.processed;
      run.processed = progress.rows ?? run.processed;
      run.cursor = position;
      this.progressed(run, items);
      // What `runs`, the API and the progress gauge read (the position itself is durable with the rows):
      // stored at most once a second.
      const now = this.clock();
      if (now - this.rereadStoredAt >= 1000) {
        this.rereadStoredAt = now;
        void this.context.store.putMeta(`run:${run.id}`, run).catch((error: unknown) => this.context.logger.debug({ err: error, run: run.id }, "storing a re-read's progress failed"));
      }
    }
    if (runComplete(position)) void this.rereadDone(run).catch((error: unknown) => this.fail(run, error));
  }

  /**
   * A re-read is done: the Run is complete, unless it is a rebuild that read its source again first
   * (its stored rows lacked a column): then it goes on as the rebuild it was planned as, past its
   * check of the columns, and computes every record's value, the records the source has no rows for
   * included (count and sum 0 over no rows). Before 2026-12-03 it ended with the re-read: those records
   * kept no value, or the one the old definition built (a postgres-cdc source whose app's
   * column.exclude.list took out a column its aggregates read, its model's primary source in another app).
   */
  private async rereadDone(run: RunState): Promise<void> {
    const planned = run.plannedAs;
    if (planned?.kind !== "rebuild") {
      await this.finish(run, (tx) => writeUpdates(tx, run.updates, this.context.operational));
      return;
    }
    const { store, logger } = this.context;
    run.spec = planned;
    run.kind = "rebuild";
    run.phase = 1;
    delete run.cursor;
    run.processed = 0;
    run.total = store.countOf("records", planned.modelId);
    await store.transact((tx) => {
      tx.putMeta(`run:${run.id}`, run);
      tx.deletePosition(runStream(run.id));
    });
    logger.info({ run: run.id, kind: run.kind, target: run.target, total: run.total }, "source read again: computing every record's value");
    if (this.stopped || run.state === "stopped" || this.current !== run) return;
    this.context.schedule(this.work(run));
  }

  private next(): void {
    if (this.stopped || this.recording) return;
    // The config's definitions are reached once the Runs it planned are done, before the Runs asked for
    // by hand that wait behind them.
    if (this.finalUpdates.length > 0 && !this.queue.some((r) => !isRequested(r))) {
      const updates = this.finalUpdates;
      this.finalUpdates = [];
      this.current = undefined;
      this.recording = true;
      void this.context.store.transact((tx) => writeUpdates(tx, updates, this.context.operational)).then(
        () => {
          this.recording = false;
          this.next();
        },
        (error: unknown) => {
          this.recording = false;
          this.context.logger.error({ err: error }, "recording the config's definitions failed (the next start plans its Runs again)");
          this.next();
        },
      );
      return;
    }
    const run = this.queue.shift();
    this.current = run;
    this.wakeRemovals();
    if (!run) {
      for (const wake of this.idleWaiters.splice(0)) wake();
      return;
    }
    void this.begin(run).catch((error: unknown) => this.fail(run, error));
  }

  private async begin(run: RunState): Promise<void> {
    const { store, logger } = this.context;
    if (RUN_HOOKS.beforeBegin) await RUN_HOOKS.beforeBegin(run, store);
    run.state = "running";
    run.startedAt ??= this.clock();
    // A source's removal counts what is left of it: resumed, what it did is part of its total.
    run.total = run.spec.kind === "remove-source" && run.processed > 0 ? run.processed + (this.totalOf(run.spec) ?? 0) : this.totalOf(run.spec);
    await store.putMeta(`run:${run.id}`, run);
    this.lastLog = this.clock();
    this.lastLogged = run.processed;
    logger.info({ run: run.id, kind: run.kind, target: run.target, total: run.total, from: run.processed }, run.processed > 0 ? "run resumed" : "run started");
    this.context.events?.started?.(run);
    if (run.spec.kind === "reread") {
      await this.reread(run, run.spec.sourceId);
      return;
    }
    this.context.schedule(this.work(run));
  }

  private totalOf(spec: RunSpec): number | null {
    const { store } = this.context;
    switch (spec.kind) {
      case "remove-source":
        return spec.primary ? store.countOf("records", spec.modelId) : store.rowCount(spec.sourceId);
      case "reread":
      case "remove-destination":
      case "remove-model":
        return null;
      default:
        return store.countOf("records", spec.modelId);
    }
  }

  /** A re-read by the source's connector; completion arrives through committed(). */
  private async reread(run: RunState, sourceId: string): Promise<void> {
    const connector = this.context.connectorOf(sourceId);
    if (!connector?.reread) {
      throw new Error(`source ${sourceId} cannot be read again: its connector does not re-read (for a Kafka topic, the source's messages must be sent again); its properties keep the values they have`);
    }
    const resumeFrom = this.context.store.position(runStream(run.id));
    if (resumeFrom !== undefined && runComplete(resumeFrom)) {
      await this.rereadDone(run);
      return;
    }
    await connector.reread({ runId: run.id, sourceIds: [sourceId], ...(resumeFrom === undefined ? {} : { resumeFrom }) });
  }

  /**
   * Whether the Run's next chunk plans exports: every Run over records, but not the drops of a removed
   * destination or of a reset one (they empty its outbox: waiting for it to drain first could wait for
   * ever), nor a removed model's.
   */
  private plansExports(run: RunState): boolean {
    switch (run.spec.kind) {
      case "remove-destination":
      case "remove-model":
      case "reread":
        return false;
      case "export":
        return run.phase >= 3;
      default:
        return true;
    }
  }

  /**
   * A Run whose next chunk would plan exports while an outbox is at its bound leaves the pipeline and
   * comes back once the outboxes are below half: batches of changes (the sources are paused for the
   * same reason), sweeps and operations go on meanwhile.
   */
  private holdWhileOutboxFull(run: RunState, work: ChunkedWork): boolean {
    if (!this.plansExports(run) || !this.context.exportsHeld?.()) return false;
    this.context.logger.info({ run: run.id, kind: run.kind, target: run.target, processed: run.processed }, "run waits: a destination's outbox holds its bound (--outbox-bound)");
    const waited = this.clock();
    const look = () => {
      if (this.stopped || run.state === "stopped" || this.current !== run) return;
      let held: boolean;
      try {
        held = this.context.exportsHeld?.() ?? false;
      } catch (error) {
        this.fail(run, error);
        return;
      }
      if (held) {
        setTimeout(look, HELD_RECHECK_MS).unref();
        return;
      }
      this.context.logger.info({ run: run.id, kind: run.kind, target: run.target, waitedMs: this.clock() - waited }, "run resumes: the outboxes are below half their bound");
      this.context.schedule(work);
    };
    setTimeout(look, HELD_RECHECK_MS).unref();
    return true;
  }

  /** The chunked work of a Run over the state. */
  private work(run: RunState): ChunkedWork {
    const work: ChunkedWork = {
      step: async () => {
        if (this.stopped || run.state === "stopped") return false;
        try {
          if (this.holdWhileOutboxFull(run, work)) return false;
          const done = await this.chunk(run);
          // Stopped by hand while the chunk ran: the next Run has started already.
          if (this.current !== run) return false;
          if (done) this.next();
          // A rebuild that turned into a re-read is driven by the connector from here on.
          return !done && run.spec.kind !== "reread";
        } catch (error) {
          this.fail(run, error);
          return false;
        }
      },
    };
    return work;
  }

  /** One chunk; true when the Run is done (its last chunk committed its definitions). */
  private async chunk(run: RunState): Promise<boolean> {
    const { store, domain } = this.context;
    const spec = run.spec;
    const now = this.clock();
    /** Runs `body` over the next chunk of keys of one phase, in one transaction with the Run's progress. */
    const over = async (keys: string[], body: (applier: BatchApplier, tx: StateTransaction, key: string) => void, items = keys.length): Promise<void> => {
      const last = keys[keys.length - 1];
      const result = await applyBatch(store, domain, [], now, (applier, tx) => {
        for (const key of keys) body(applier, tx, key);
        run.processed += items;
        run.cursor = last;
        this.fitTotal(run);
        tx.putMeta(`run:${run.id}`, run);
      });
      this.context.events?.applied?.(run, result);
      this.progressed(run, items);
    };
    /** On to the Run's next phase (recorded, so a restart resumes there). */
    const nextPhase = async (): Promise<boolean> => {
      run.phase += 1;
      delete run.cursor;
      await store.putMeta(`run:${run.id}`, run);
      return false;
    };
    const records = (modelId: string, limit = RECORDS_PER_CHUNK) => store.recordIdsOf(modelId, run.cursor, limit);
    /**
     * Drops one prefix a chunk at a time. What it drops counts as the Run's progress unless the Run
     * counts records (a reset's drops, a unique index's entries: its done count stays within its total).
     */
    const drop = async (index: Parameters<StateTransaction["dropPrefix"]>[0], prefix: string[], counted = true): Promise<boolean> => {
      let dropped = 0;
      await store.transact((tx) => {
        dropped = tx.dropPrefix(index, prefix, KEYS_PER_CHUNK);
        if (counted) run.processed += dropped;
        this.fitTotal(run);
        tx.putMeta(`run:${run.id}`, run);
      });
      if (counted) this.progressed(run, dropped);
      return dropped < KEYS_PER_CHUNK;
    };

    switch (spec.kind) {
      case "remove-destination": {
        const d = spec.destinationId;
        const phases = ["outbox", "outbox-by-record", "remote", "export-results"] as const;
        const index = phases[run.phase];
        if (index === undefined) return this.phaseDone(run, (tx) => tx.deleteMeta(`seq:outbox:${d}`));
        if (await drop(index, [d])) return nextPhase();
        return false;
      }
      case "remove-group": {
        if (run.phase === 0) {
          const ids = records(spec.modelId);
          if (ids.length === 0) return nextPhase();
          if (!domain.models.has(spec.modelId)) {
            // Its model goes too (remove-model, next, drops its records whole without counting them
            // out): a group moved from it to another model counts its records here out of its members.
            await over(ids, (_applier, tx, id) => {
              if (store.getRecord(spec.modelId, id)?.groups.includes(spec.groupId)) tx.bump("members", spec.groupId, -1);
            });
            return false;
          }
          await over(ids, (applier, _tx, id) => applier.forget(spec.modelId, id, { groups: [spec.groupId] }));
          return false;
        }
        return this.phaseDone(run, (tx) => {
          tx.dropTimeIndex(spec.modelId, spec.groupId, Number.MAX_SAFE_INTEGER);
          // The counter is the group's, whatever its model: one moved to another model keeps what its
          // new model's records counted meanwhile (each record that left it here was counted out).
          if (this.context.domain.groups.get(spec.groupId) === undefined) tx.dropCounter("members", spec.groupId);
        });
      }
      case "remove-property": {
        if (run.phase === 0 && spec.unique) {
          if (await drop("unique", [spec.modelId, spec.propertyId], false)) {
            run.phase = 1;
            delete run.cursor;
          }
          return false;
        }
        const ids = records(spec.modelId);
        if (ids.length === 0) return this.phaseDone(run);
        await over(ids, (applier, _tx, id) => applier.forget(spec.modelId, id, { properties: [spec.propertyId] }));
        return false;
      }
      case "remove-source": {
        if (spec.primary) {
          const ids = records(spec.modelId);
          if (ids.length === 0) return this.phaseDone(run);
          await over(ids, (applier, _tx, id) => applier.deleteRecordOf(spec.modelId, id));
          // One pass in key order, the next chunk after the last record deleted: a record behind it was
          // made since by the stream, under the new definition (the source replaced, its id kept), and
          // stays. Started again from the first record, the Run ended only at a chunk that found none, so
          // a stream making one record between every two chunks kept it going for as long as it did.
          return false;
        }
        const keys = store.rowKeysOf(spec.sourceId, undefined, KEYS_PER_CHUNK);
        if (keys.length === 0) return this.phaseDone(run);
        await over(keys, (applier, _tx, key) => applier.forgetRow(spec.modelId, spec.sourceId, key));
        delete run.cursor;
        return false;
      }
      case "remove-model": {
        const m = spec.modelId;
        // Its records and their indexes, then the rows of its sources (those it forgets), then its time
        // index and counters.
        const phases: [Parameters<typeof drop>[0], string[]][] = [
          ...(["records", "unique", "attached", "pending"] as const).map((index): [Parameters<typeof drop>[0], string[]] => [index, [m]]),
          ...run.updates.filter((u) => u.cls === "sources").map((u): [Parameters<typeof drop>[0], string[]] => ["rows", [u.id]]),
        ];
        const phase = phases[run.phase];
        if (phase !== undefined) {
          if (await drop(phase[0], phase[1])) {
            run.phase += 1;
            delete run.cursor;
          }
          return false;
        }
        let dropped = 0;
        await store.transact((tx) => {
          dropped = tx.dropTimeIndex(m, undefined, KEYS_PER_CHUNK);
          if (dropped < KEYS_PER_CHUNK) tx.dropCounter("records", m);
        });
        if (dropped < KEYS_PER_CHUNK) return this.phaseDone(run, (tx) => {
          for (const u of run.updates) if (u.cls === "groups") tx.dropCounter("members", u.id);
        });
        return false;
      }
      case "rebuild": {
        if (run.phase === 0) {
          const missing = this.missingColumns(spec.sourceId, spec.propertyIds);
          if (missing.length > 0 && !this.context.connectorOf(spec.sourceId)?.reread) {
            // Computed from rows without the column, every value would be wrong: the Run fails, named.
            throw new Error(`${lacking(spec.sourceId, missing)}, and its connector cannot read the source again`);
          }
          if (missing.length > 0) {
            // The stored rows lack a column the new definition reads: the source is read again instead.
            this.context.logger.warn({ run: run.id, source: spec.sourceId, missing }, "the stored rows lack columns the new definition reads: reading the source again");
            run.plannedAs = spec;
            run.spec = { kind: "reread", sourceId: spec.sourceId, modelId: spec.modelId };
            run.kind = "reread";
            run.phase = 0;
            await store.putMeta(`run:${run.id}`, run);
            await this.reread(run, spec.sourceId);
            return false;
          }
          run.phase = 1;
        }
        if (!spec.scan) {
          // Each record from its own rows, read in its transaction (a repair asked for by hand).
          const ids = records(spec.modelId);
          if (ids.length === 0) return this.phaseDone(run);
          await over(ids, (applier, _tx, id) => applier.rebuild(spec.modelId, id, spec.propertyIds));
          return false;
        }
        // The row store read in key order into per-record states (in memory: after a restart the scan is
        // done again), then every record written from them, a chunk at a time.
        const scan = this.scan?.runId === run.id ? this.scan : (this.scan = { runId: run.id, after: undefined, done: false, states: new Map() });
        if (!scan.done) {
          const rows = store.rowsAfter(spec.sourceId, scan.after, KEYS_PER_CHUNK);
          const specs = spec.propertyIds.flatMap((id) => {
            const property = domain.properties.get(id);
            return property ? [property] : [];
          });
          for (const [rowKey, stored] of rows) {
            if (!stored.recordId) continue;
            let states = scan.states.get(stored.recordId);
            if (!states) scan.states.set(stored.recordId, (states = new Map()));
            for (const property of specs) states.set(property.id, applyRowChange(property.aggregate, states.get(property.id) ?? emptyAggregate(property.aggregate), rowKey, null, stored.row));
          }
          scan.after = rows[rows.length - 1]?.[0] ?? scan.after;
          if (rows.length < KEYS_PER_CHUNK) scan.done = true;
          this.progressed(run, 0);
          return false;
        }
        const ids = records(spec.modelId, SCANNED_RECORDS_PER_CHUNK);
        if (ids.length === 0) {
          this.scan = undefined;
          return this.phaseDone(run);
        }
        await over(ids, (applier, _tx, id) => applier.setAggregates(spec.modelId, id, spec.propertyIds, scan.states.get(id)));
        return false;
      }
      case "backfill": {
        const chunk = await backfillChunk(store, domain, spec.modelId, spec.groupId, run.cursor, now, SCANNED_RECORDS_PER_CHUNK, (tx, last, count) => {
          run.processed += count;
          run.cursor = last;
          this.fitTotal(run);
          tx.putMeta(`run:${run.id}`, run);
        });
        if (!chunk) return this.phaseDone(run);
        this.context.events?.applied?.(run, chunk.result);
        this.progressed(run, chunk.count);
        return false;
      }
      case "export": {
        const d = spec.destinationId;
        // Phases: 0-2 forget what the destination held (a reset), or 1 what is queued for it of
        // records that no longer exist (any other); 3 every record; 4 what it holds of records that no
        // longer exist. A record can be gone with an export still queued (a model rebuilt whole drops
        // its records without planning exports): planned again, an unsent one is dropped and one being
        // sent gets its delete behind it, so that what is acknowledged after phase 1 passed it is in
        // what phase 4 reads. (A version before phase 1 resumes such a Run at phase 3.)
        const replanGone = async (ids: string[]) => {
          // Only the records gone from the model are planned (and counted): the others are phase 3's.
          const gone = new Set(ids.filter((id) => !store.getRecord(spec.modelId, id)));
          await over(ids, (applier, _tx, id) => {
            if (gone.has(id)) applier.replan(d, id);
          }, gone.size);
          return false;
        };
        if (run.phase < 3 && !spec.reset) {
          const ids = store.queuedRecordIds(d, run.phase === 1 ? run.cursor : undefined, RECORDS_PER_CHUNK);
          run.phase = 1;
          if (ids.length === 0) {
            run.phase = 3;
            delete run.cursor;
            return false;
          }
          return replanGone(ids);
        }
        if (run.phase < 3) {
          const index = (["outbox", "outbox-by-record", "remote"] as const)[run.phase];
          if (index === undefined || (await drop(index, [d], false))) {
            run.phase += 1;
            delete run.cursor;
          }
          return false;
        }
        if (run.phase === 3) {
          const ids = records(spec.modelId);
          if (ids.length === 0) return nextPhase();
          await over(ids, (applier, _tx, id) => applier.replan(d, id));
          return false;
        }
        const ids = store.remoteRecordIds(d, run.cursor, RECORDS_PER_CHUNK);
        if (ids.length === 0) return this.phaseDone(run);
        return replanGone(ids);
      }
      case "reread":
        return false;
    }
  }

  /**
   * What of a plan this state cannot carry out without reading a source again, as "target: why": its
   * re-reads, and rebuilds whose source's stored rows lack a column the new definition reads.
   */
  needingReread(plan: RunPlan): string[] {
    return plan.runs.flatMap((r) => {
      if (r.spec.kind === "reread") return [`${r.target}: ${r.reason}`];
      if (r.spec.kind !== "rebuild") return [];
      const missing = this.missingColumns(r.spec.sourceId, r.spec.propertyIds);
      return missing.length === 0 ? [] : [`${r.target}: ${lacking(r.spec.sourceId, missing)}`];
    });
  }

  /** Columns a rebuild reads that the stored rows of the source (a sample) do not have. */
  private missingColumns(sourceId: string, propertyIds: readonly string[]): string[] {
    const needed = new Set<string>();
    for (const id of propertyIds) {
      const spec = this.context.domain.properties.get(id)?.aggregate;
      if (!spec) continue;
      needed.add(spec.column);
      if (spec.sortColumn) needed.add(spec.sortColumn);
      for (const f of spec.filters) needed.add(f.key);
    }
    const missing = new Set<string>();
    let sampled = 0;
    for (const [, row] of this.context.store.rowsOf(sourceId)) {
      for (const column of needed) if (!(column in row.row)) missing.add(column);
      if (++sampled >= 100) break;
    }
    return [...missing];
  }

  /** The Run is done: its definitions (and `finalize`) commit with its completion. */
  private async phaseDone(run: RunState, finalize?: (tx: StateTransaction) => void): Promise<boolean> {
    await this.finish(run, (tx) => {
      finalize?.(tx);
      writeUpdates(tx, run.updates, this.context.operational);
    });
    return true;
  }

  private async finish(run: RunState, body: (tx: StateTransaction) => void): Promise<void> {
    run.state = "complete";
    run.finishedAt = this.clock();
    await this.context.store.transact((tx) => {
      body(tx);
      tx.putMeta(`run:${run.id}`, run);
      // Its re-read's position (where it would resume) is done with: a fresh state has none.
      tx.deletePosition(runStream(run.id));
    });
    const seconds = ((run.finishedAt - (run.startedAt ?? run.finishedAt)) / 1000).toFixed(1);
    this.context.logger.info({ run: run.id, kind: run.kind, target: run.target, processed: run.processed, seconds }, "run complete");
    this.context.events?.finished?.(run);
    if (run.kind === "reread") this.next();
  }

  private fail(run: RunState, error: unknown): void {
    // Its definitions are not reached: nothing may record them as reached when the queue moves on.
    if (run.updates.length > 0) this.finalUpdates = [];
    run.state = "failed";
    run.finishedAt = this.clock();
    run.error = error instanceof Error ? error.message : String(error);
    this.context.logger.error({ run: run.id, kind: run.kind, target: run.target, err: error }, `run failed: ${run.error}`);
    void this.context.store
      .transact((tx) => {
        tx.putMeta(`run:${run.id}`, run);
        tx.deletePosition(runStream(run.id));
      })
      .catch(() => undefined);
    this.context.events?.finished?.(run);
    if (this.current === run) this.next();
  }

  /**
   * Records created while the Run goes are done too: its total follows (in the transaction that writes
   * its progress), so done never passes it. Record counts are counters (a cheap read); a source's rows
   * are not counted again.
   */
  private fitTotal(run: RunState): void {
    if (run.total === null || run.processed <= run.total) return;
    run.total = Math.max(run.processed, run.spec.kind === "remove-source" ? 0 : (this.totalOf(run.spec) ?? 0));
  }

  private progressed(run: RunState, items: number): void {
    this.context.events?.progressed?.(run, items);
    const now = this.clock();
    if (now - this.lastLog < LOG_EVERY_MS) return;
    const rate = Math.round(((run.processed - this.lastLogged) * 1000) / Math.max(1, now - this.lastLog));
    this.context.logger.info({ run: run.id, kind: run.kind, target: run.target, processed: run.processed, total: run.total, perSecond: rate }, "run progress");
    this.lastLog = now;
    this.lastLogged = run.processed;
  }
}

/** Why a rebuild cannot be computed from a source's stored rows: the columns of the new definition they lack. */
const lacking = (sourceId: string, missing: readonly string[]) => `the stored rows of source ${sourceId} lack ${missing.length === 1 ? "the column" : "the columns"} ${missing.join(", ")} that the new definition reads`;

/** Whether a Run of the state does the work a planned Run would (so it resumes instead of starting over). */
function sameWork(run: RunState, planned: PlannedRun, operational: OperationalOptions | undefined): boolean {
  if (JSON.stringify(run.plannedAs ?? run.spec) !== JSON.stringify(planned.spec)) return false;
  // Its definitions as this version records them (an earlier version's kept operational options, and no app identity).
  const updates = run.updates.map((u, i) => comparableUpdate(u, planned.updates[i], operational));
  return JSON.stringify(updates) === JSON.stringify(planned.updates);
}

/** Every definition as an update (a new state records them all). */
function allUpdates(definitions: Definitions): DefinitionUpdate[] {
  return DEFINITION_CLASSES.flatMap((cls) => Object.entries(definitions[cls]).map(([id, definition]) => ({ cls, id, definition })));
}
