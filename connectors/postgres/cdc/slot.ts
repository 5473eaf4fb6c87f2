// The publication and the replication slot of a postgres app: created when missing, a lost slot
// recognised (a clear, final error, or a new snapshot under snapshot.mode when_needed), and a new slot
// created with an exported snapshot when the snapshot mode asks for one.
import pg from "pg";
import type { Logger } from "pino";
import { quoteIdent, quoteTable, withClient } from "../introspect.js";
import { PermanentError } from "../errors.js";
import type { PostgresAppSettings } from "../settings.js";
import { addToPublication } from "./tables.js";

/** The slot is gone (dropped or invalidated) after this state read from it: not retried. */
export class SlotLostError extends Error {
  readonly code = "REPLICATION_SLOT_LOST";
}

export interface CapturedTable {
  sourceId: string;
  /** schema.table */
  table: string;
}

/** What the connector knows of its own history, to decide whether a snapshot is due. */
export interface SlotHistory {
  /** Publication and slot were prepared in this process before (a reconnect never snapshots again). */
  prepared: boolean;
  /** The state holds a completed snapshot of this app. */
  snapshotDone: boolean;
  /** The state has streamed from the slot. */
  streamed: boolean;
}

/** Creates or extends the publication; true when the slot exists and can be streamed from (after dropping a lost one under when_needed). */
async function preparePublicationAndCheckSlot(settings: PostgresAppSettings, tables: readonly CapturedTable[], logger: Logger): Promise<boolean> {
  const { publication, slot, publicationAutocreateMode, snapshot } = settings;
  return withClient(settings.connection, async (client) => {
    const pub = await client.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
    if (pub.rowCount === 0) {
      if (publicationAutocreateMode === "disabled") throw new PermanentError(`publication ${publication} does not exist and publication.autocreate.mode is disabled`);
      const target = publicationAutocreateMode === "all_tables" ? "ALL TABLES" : `TABLE ${tables.map((t) => quoteTable(t.table)).join(", ")}`;
      await client.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR ${target}`);
      logger.info({ publication }, "created publication");
    } else {
      await addToPublication(client, settings, tables.map((t) => t.table));
    }
    const found = await client.query<{ active: boolean; wal_status: string | null }>(`SELECT active, wal_status FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    const row = found.rows[0];
    if (row?.wal_status === "lost") {
      if (snapshot !== "when_needed") throw new SlotLostError(`replication slot ${slot} is invalidated (wal_status lost): changes were lost; use snapshot.mode when_needed to take a new snapshot, or reset the state`);
      await client.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
      logger.warn({ slot }, "the replication slot was invalidated: dropped it to take a new snapshot (when_needed)");
      return false;
    }
    return row !== undefined;
  });
}

/** How long slot creation waits before a warning names why (transactions still running on the server). */
const SLOT_WAIT_WARN_MS = 5000;

/** What preparation decided: stream the existing slot, or a new slot was made (and whether with a snapshot). */
export type SlotPlan = { kind: "stream" } | { kind: "create"; snapshot: boolean };

/** Publication and slot: created when missing; decides whether a new slot with a snapshot is needed. */
export async function planSlot(settings: PostgresAppSettings, tables: readonly CapturedTable[], history: SlotHistory, logger: Logger): Promise<SlotPlan> {
  const { slot, snapshot } = settings;
  const slotExists = await preparePublicationAndCheckSlot(settings, tables, logger);
  const streamedBefore = history.prepared || history.streamed || history.snapshotDone;
  if (!slotExists && streamedBefore && snapshot !== "when_needed" && snapshot !== "always") {
    throw new SlotLostError(`replication slot ${slot} no longer exists but this state has read from it (or, if the config now names another slot, from the slot it named before): changes since then are lost; use snapshot.mode when_needed to take a new snapshot, or start on an empty --state`);
  }
  const wantsSnapshot =
    (snapshot === "always" && !history.prepared) ||
    ((snapshot === "initial" || snapshot === "initial_only" || snapshot === "when_needed" || snapshot === "always") && (!slotExists || !history.snapshotDone));
  if (slotExists && !wantsSnapshot) return { kind: "stream" };
  if (slotExists) {
    // A slot without a completed snapshot behind it (or snapshot.mode always): start over from a new slot.
    await withClient(settings.connection, (client) => client.query(`SELECT pg_drop_replication_slot($1)`, [slot]));
    logger.warn({ slot }, "dropped the replication slot to take a new consistent snapshot: this state holds no completed snapshot from it (a new --state, or a snapshot cut short); a state that had read from it cannot resume now");
  }
  return { kind: "create", snapshot: wantsSnapshot };
}

/**
 * Creates the slot (with an exported snapshot when asked) and, while its replication connection stays
 * open and idle (the exported snapshot lives exactly that long), runs `withSnapshot` on it.
 * Postgres creates a logical slot only once every transaction running when it was asked for has ended
 * (its starting point must see them whole): behind a long transaction, CREATE_REPLICATION_SLOT waits
 * as long. `stopRequested` cancels that wait (pg_cancel_backend: no slot is made), so a stop is not
 * held up by someone else's transaction.
 */
export async function createSlot(
  settings: PostgresAppSettings,
  exportSnapshot: boolean,
  logger: Logger,
  withSnapshot: (snapshotName: string, consistentPoint: string) => Promise<void>,
  stopRequested?: Promise<void>,
): Promise<void> {
  const { slot } = settings;
  const replication = new pg.Client({ ...settings.connection, replication: "database" } as pg.ClientConfig);
  replication.on("error", () => undefined);
  await replication.connect();
  let creating = true;
  const waiting = setTimeout(() => {
    if (creating) logger.warn({ slot }, "creating the replication slot waits for transactions running on the server to end (pg_stat_activity shows them)");
  }, SLOT_WAIT_WARN_MS);
  void stopRequested?.then(async () => {
    // Again until the query ends: a cancel that reaches the server before the command runs is lost.
    const pid = (replication as unknown as { processID: number | null }).processID;
    while (creating && pid !== null) {
      await withClient(settings.connection, (client) => client.query("SELECT pg_cancel_backend($1)", [pid])).catch(() => undefined);
      if (creating) await new Promise((r) => setTimeout(r, 500));
    }
  });
  try {
    let created;
    try {
      created = await replication.query<{ consistent_point: string; snapshot_name: string | null }>(
        `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT '${exportSnapshot ? "export" : "nothing"}')`,
      );
    } finally {
      creating = false;
      clearTimeout(waiting);
    }
    const { consistent_point: consistentPoint, snapshot_name: snapshotName } = created.rows[0] ?? { consistent_point: "0/0", snapshot_name: null };
    logger.info({ slot, consistentPoint, snapshot: exportSnapshot }, "created replication slot");
    if (exportSnapshot && snapshotName) await withSnapshot(snapshotName, consistentPoint);
  } finally {
    await replication.end();
  }
}
