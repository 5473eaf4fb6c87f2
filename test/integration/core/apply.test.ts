// The core applied to real LMDB state: records, unique values, aggregates over many rows (and rows
// waiting for their record), groups entering and leaving, exports planned, positions stored.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { STATE_FORMAT, Store } from "../../../state/store.js";
import type { Change } from "../../../core/change.js";
import { DAY, change, coreDomain, purchase, user } from "../../helpers/core.js";
import { applyBatch, backfillChunk, sweep } from "../../../streams/batch.js";

const T = Date.UTC(2026, 10, 1, 12, 0, 0);
const domain = coreDomain();

describe("applying batches", () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "core-"));
    store = Store.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** Applies changes; under one config nothing is ever found inconsistent (no aggregate is repaired). */
  const apply = async (changes: Change[], now = T) => {
    const result = await applyBatch(store, domain, changes, now);
    expect(result.repairs).toEqual([]);
    return result;
  };

  it("moves a row whose key changed (movedFrom), its values the change does not carry taken from the moved row", async () => {
    await apply([user(1, { email: "a@example.com", first_name: "Ada", vip: true }), purchase(10, { user_id: 1, amount: 30, state: "paid", sku: "A", created_at: T - DAY })]);
    // Unchanged TOAST values arrive as undefined: first_name on the primary row, sku on the purchase.
    await apply([
      { ...change("users_table", "insert", "2", { id: 2, email: "a@example.com", first_name: undefined, vip: false }, T, { id: 1 }), movedFrom: "1" },
      { ...change("purchases_table", "insert", "11", { id: 11, user_id: 2, amount: 30, state: "paid", sku: undefined, created_at: T - DAY }, T, { id: 10 }), movedFrom: "10" },
    ]);
    expect(store.getRecord("users", "1")).toBeUndefined();
    expect(store.getRecord("users", "2")?.values).toMatchObject({ user_id: 2, email: "a@example.com", first_name: "Ada", vip: false, purchase_count: 1, lifetime_value: 30, skus: ["A"], last_sku: "A" });
    expect([...store.rowsOf("purchases_table")].map(([key, row]) => [key, row.row])).toEqual([["11", { id: 11, user_id: 2, amount: 30, state: "paid", sku: "A", created_at: T - DAY }]]);
    // Without a stored row to move from (its delete was replayed before), a value not carried is null.
    await apply([{ ...change("users_table", "insert", "3", { id: 3, email: "c@example.com", first_name: undefined }, T, { id: 9 }), movedFrom: "9" }]);
    expect(store.getRecord("users", "3")?.values).toMatchObject({ user_id: 3, first_name: null });
  });

  it("creates a record from a primary row with normalised values, empty aggregates and its groups", async () => {
    const result = await apply([user(1, { email: " Ada@Example.COM ", first_name: "Ada", vip: "t" })]);
    expect(result.recordDelta).toEqual(new Map([["users", 1]]));
    expect(store.getRecord("users", "1")).toEqual({
      id: "1",
      createdAt: 1_700_000_000_000,
      values: {
        user_id: 1,
        email: "ada@example.com",
        first_name: "Ada",
        vip: true,
        purchase_count: 0,
        lifetime_value: 0,
        max_amount: null,
        last_purchase_at: null,
        last_sku: null,
        skus: [],
      },
      invalid: {},
      groups: ["example_emails", "named_a", "never_a", "vip_or_big", "vips"],
      aggregates: {},
      boundaries: {},
      defs: domain.models.get("users")?.aggregatesHash,
    });
    expect(store.membersOf("users", "vips")).toEqual(["1"]);
    expect(store.countOf("records", "users")).toBe(1);
    expect(store.countOf("members", "vips")).toBe(1);
  });

  it("aggregates a secondary source's rows and moves the record in and out of groups", async () => {
    await apply([user(1, { email: "ada@example.com" })]);
    await apply([
      purchase(10, { user_id: 1, amount: "60.50", state: "paid", sku: "A", created_at: new Date(T - 2 * DAY) }),
      purchase(11, { user_id: 1, amount: 45, state: "paid", sku: "B", created_at: new Date(T - DAY) }),
      purchase(12, { user_id: 1, amount: 500, state: "refunded", sku: "C", created_at: new Date(T - 5 * DAY) }),
    ]);
    const record = store.getRecord("users", "1");
    expect(record?.values).toMatchObject({
      purchase_count: 3,
      lifetime_value: 105.5,
      max_amount: 500,
      last_purchase_at: T - DAY,
      last_sku: "B",
      skus: ["A", "B", "C"],
    });
    expect(record?.groups).toEqual(["bought_a", "buyers", "example_emails", "high_value", "recent", "vip_or_big"]);

    await apply([change("purchases_table", "delete", "10", null)]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ purchase_count: 2, lifetime_value: 45, skus: ["B", "C"] });
    expect(store.getRecord("users", "1")?.groups).toEqual(["buyers", "example_emails", "never_a", "recent", "vip_or_big"]);
    expect(store.membersOf("users", "high_value")).toEqual([]);
  });

  it("keeps rows that arrive before their record and attaches them when it appears", async () => {
    await apply([purchase(10, { user_id: 7, amount: 150, state: "paid", sku: "A", created_at: T })]);
    expect(store.getRecord("users", "7")).toBeUndefined();
    expect(store.rowOf("purchases_table", "10")?.recordId).toBeNull();
    await apply([user(7, { email: "late@example.com" })]);
    expect(store.getRecord("users", "7")?.values).toMatchObject({ purchase_count: 1, lifetime_value: 150 });
    expect(store.getRecord("users", "7")?.groups).toContain("high_value");
    expect(store.rowOf("purchases_table", "10")?.recordId).toBe("7");
  });

  it("attaches rows that start waiting in the batch that already found none waiting", async () => {
    // The first user finds no row waiting (remembered for the batch); the purchases then wait, and the
    // users after them in the same batch still claim them.
    await apply([
      user(1),
      purchase(10, { user_id: 7, amount: 150, state: "paid", sku: "A", created_at: T }),
      purchase(11, { user_id: 8, amount: 20, state: "paid", sku: "B", created_at: T }),
      user(7),
      user(2),
    ]);
    expect(store.getRecord("users", "7")?.values).toMatchObject({ purchase_count: 1, lifetime_value: 150 });
    expect(store.rowOf("purchases_table", "10")?.recordId).toBe("7");
    expect(store.rowOf("purchases_table", "11")?.recordId).toBeNull();
    await apply([user(3), user(8)]);
    expect(store.getRecord("users", "8")?.values).toMatchObject({ purchase_count: 1, lifetime_value: 20 });
    expect(store.getRecord("users", "3")?.values).toMatchObject({ purchase_count: 0 });
    expect(store.rowOf("purchases_table", "11")?.recordId).toBe("8");
  });

  it("moves a row from one record to another on update", async () => {
    await apply([user(1), user(2), purchase(10, { user_id: 1, amount: 120, state: "paid", sku: "A", created_at: T })]);
    await apply([change("purchases_table", "update", "10", { id: 10, user_id: 2, amount: 120, state: "paid", sku: "A", created_at: T })]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ purchase_count: 0, lifetime_value: 0, skus: [] });
    expect(store.getRecord("users", "2")?.values).toMatchObject({ purchase_count: 1, lifetime_value: 120, skus: ["A"] });
    expect(store.membersOf("users", "high_value")).toEqual(["2"]);
  });

  it("keeps the values an update leaves out (unchanged TOAST values), and clears a column it does not have (dropped)", async () => {
    await apply([user(1, { email: "a@example.com", first_name: "Ada" })]);
    await apply([change("users_table", "update", "1", { id: 1, email: undefined, first_name: undefined, vip: true })]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ email: "a@example.com", first_name: "Ada", vip: true });
    // The table lost first_name: a fresh read has none, so neither does the record.
    await apply([change("users_table", "update", "1", { id: 1, email: undefined, vip: false })]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ email: "a@example.com", first_name: null, vip: false });
    // The same for a row of another source, stored whole.
    await apply([purchase(10, { user_id: 1, amount: 10, state: "paid", sku: "A", created_at: T })]);
    await apply([change("purchases_table", "update", "10", { id: 10, user_id: 1, amount: 12, state: undefined, sku: "A" })]);
    expect(store.rowOf("purchases_table", "10")?.row).toEqual({ id: 10, user_id: 1, amount: 12, state: "paid", sku: "A" });
    // A partial row (Kafka's json format, an earlier relay's message) keeps what it leaves out.
    await apply([{ ...change("users_table", "update", "1", { id: 1, email: "a3@example.com" }), partial: true }]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ email: "a3@example.com", first_name: null, vip: false });
    await apply([{ ...change("purchases_table", "update", "10", { id: 10, user_id: 1, amount: 13 }), partial: true }]);
    expect(store.rowOf("purchases_table", "10")?.row).toEqual({ id: 10, user_id: 1, amount: 13, state: "paid", sku: "A" });
  });

  it("deletes the record with its primary row, and its rows wait again for a record", async () => {
    await apply([user(1, { vip: true }), purchase(10, { user_id: 1, amount: 10, state: "paid", sku: "A", created_at: T })]);
    const result = await apply([change("users_table", "delete", "1", null)]);
    expect(result.recordDelta).toEqual(new Map([["users", -1]]));
    expect(store.getRecord("users", "1")).toBeUndefined();
    expect(store.membersOf("users", "vips")).toEqual([]);
    expect(store.countOf("members", "vips")).toBe(0);
    expect(store.aggregateOf("users", "1", "purchase_count")).toBeUndefined();
    expect(store.rowOf("purchases_table", "10")?.recordId).toBeNull();
    await apply([user(1)]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ purchase_count: 1, lifetime_value: 10 });
  });

  it("stores a unique value already held by another record as null with Duplicate Value", async () => {
    await apply([user(1, { email: "same@example.com" }), user(2, { email: "SAME@example.com" })]);
    expect(store.getRecord("users", "2")?.values.email).toBeNull();
    expect(store.getRecord("users", "2")?.invalid).toEqual({ email: "Duplicate Value" });
    expect(store.getRecord("users", "2")?.groups).toContain("no_email");
    await apply([change("users_table", "update", "2", { id: 2, email: "other@example.com" })]);
    expect(store.getRecord("users", "2")?.values.email).toBe("other@example.com");
    expect(store.getRecord("users", "2")?.invalid).toEqual({});
  });

  it("gives a unique value its holder lets go of to the record refused it, the lowest id first, as a fresh read would", async () => {
    const email = (id: string) => ({ email: store.getRecord("users", id)?.values.email, invalid: store.getRecord("users", id)?.invalid.email });
    await apply([user(1, { email: "a@example.com" }), user(3, { email: "a@example.com" }), user(2, { email: "a@example.com" })]);
    expect([email("2"), email("3")]).toEqual([{ email: null, invalid: "Duplicate Value" }, { email: null, invalid: "Duplicate Value" }]);
    // Before, both stayed null for good.
    await apply([change("users_table", "update", "1", { id: 1, email: "b@example.com" })]);
    expect([email("1"), email("2"), email("3")]).toEqual([{ email: "b@example.com", invalid: undefined }, { email: "a@example.com", invalid: undefined }, { email: null, invalid: "Duplicate Value" }]);
    expect(store.getRecord("users", "2")?.groups).not.toContain("no_email");
    await apply([change("users_table", "delete", "2", null)]);
    expect(email("3")).toEqual({ email: "a@example.com", invalid: undefined });
    // A record refused a value that then takes another one waits for it no more.
    await apply([user(5, { email: "a@example.com" })]);
    expect(email("5")).toEqual({ email: null, invalid: "Duplicate Value" });
    await apply([change("users_table", "update", "5", { id: 5, email: "d@example.com" }), change("users_table", "update", "3", { id: 3, email: "c@example.com" })]);
    expect([email("3"), email("5")]).toEqual([{ email: "c@example.com", invalid: undefined }, { email: "d@example.com", invalid: undefined }]);
    await apply([user(6, { email: "a@example.com" })]);
    expect(email("6")).toEqual({ email: "a@example.com", invalid: undefined });
  });

  it("gives a unique value several records carry to the lowest id whatever order they arrive in, with the rows keyed by it", async () => {
    const byEmail = coreDomain([
      { class: "source", id: "tickets", type: "postgres-cdc", appId: "db", modelId: "users", options: { table: "tickets" }, mapping: { email: "email" } },
      { class: "property", id: "tickets", type: "integer", sourceId: "tickets", options: { column: "id", aggregationMethod: "count" } },
      { class: "group", id: "has_tickets", modelId: "users", rules: [{ propertyId: "tickets", op: "gt", match: 0 }] },
    ]);
    const applyTo = async (changes: Change[]) => expect((await applyBatch(store, byEmail, changes, T)).repairs).toEqual([]);
    const state = (id: string) => {
      const r = store.getRecord("users", id);
      return { email: r?.values.email, invalid: r?.invalid.email, tickets: r?.values.tickets, ticketGroup: r?.groups.includes("has_tickets") };
    };
    const ticket = (id: number, email: string) => change("tickets", "insert", String(id), { id, email });
    // 30 arrives first and holds the value, with a ticket keyed by it; then 20 (a lower id) arrives.
    await applyTo([user(30, { email: "x@example.com" }), ticket(1, "x@example.com")]);
    expect(state("30")).toEqual({ email: "x@example.com", invalid: undefined, tickets: 1, ticketGroup: true });
    await applyTo([user(20, { email: "x@example.com" }), user(40, { email: "x@example.com" })]);
    expect([state("20"), state("30"), state("40")]).toEqual([
      { email: "x@example.com", invalid: undefined, tickets: 1, ticketGroup: true },
      { email: null, invalid: "Duplicate Value", tickets: 0, ticketGroup: false },
      { email: null, invalid: "Duplicate Value", tickets: 0, ticketGroup: false },
    ]);
    // The destination follows: 30 loses its email, 20 has it.
    const queued = (id: string) => store.outboxOf("crm").find((e) => e.recordId === id)?.newRecordProperties.email;
    expect([queued("20"), queued("30")]).toEqual(["x@example.com", null]);
    // Integers order by value ("100" after "20"), before any other text.
    await applyTo([user(100, { email: "x@example.com" })]);
    expect(state("100").invalid).toBe("Duplicate Value");
    // When 20 lets it go, the next lowest takes it back, with its ticket.
    await applyTo([change("users_table", "update", "20", { id: 20, email: "y@example.com" })]);
    expect([state("20").email, state("30"), state("40").email, state("100").email]).toEqual(["y@example.com", { email: "x@example.com", invalid: undefined, tickets: 1, ticketGroup: true }, null, null]);
    // The same rows applied in the reverse order, in a fresh state, end the same.
    const other = Store.open(mkdtempSync(join(tmpdir(), "core-")));
    try {
      const rows = [user(100, { email: "x@example.com" }), user(40, { email: "x@example.com" }), user(20, { email: "y@example.com" }), user(30, { email: "x@example.com" }), ticket(1, "x@example.com")];
      await applyBatch(other, byEmail, rows, T);
      const seen = (s: Store, id: string) => {
        const r = s.getRecord("users", id);
        return { values: r?.values, invalid: r?.invalid, groups: r?.groups };
      };
      for (const id of ["20", "30", "40", "100"]) expect(seen(other, id)).toEqual(seen(store, id));
    } finally {
      await other.close();
    }
  });

  it("tells which columns its sources read that a whole row did not have, not those a partial change or an unchanged value leaves out", async () => {
    const result = await apply([
      user(1, { email: "a@example.com", first_name: "Ada", vip: true }),
      user(2, { email: "b@example.com", vip: false }),
      change("users_table", "update", "1", { id: 1, email: "a@example.com", first_name: undefined, vip: true }),
      { ...change("users_table", "update", "1", { id: 1 }), partial: true },
      purchase(10, { user_id: 1, amount: 5, state: "paid", created_at: T }),
    ]);
    expect(result.missingColumns).toEqual(new Map([["users_table", ["first_name"]], ["purchases_table", ["sku"]]]));
    expect((await apply([user(3, { email: "c@example.com", first_name: null, vip: null })])).missingColumns).toEqual(new Map());
  });

  it("stores an invalid value as null with the reason", async () => {
    await apply([user(1, { vip: "maybe", email: "not-an-email" })]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ vip: null, email: null });
    expect(store.getRecord("users", "1")?.invalid).toEqual({ vip: "Invalid boolean value", email: "Invalid email value" });
  });

  it("removes every row of a truncated source", async () => {
    await apply([user(1), purchase(10, { user_id: 1, amount: 10, state: "paid", sku: "A", created_at: T }), purchase(11, { user_id: 1, amount: 5, state: "paid", sku: "B", created_at: T })]);
    await apply([change("purchases_table", "truncate", "", null)]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ purchase_count: 0, lifetime_value: 0, skus: [] });
    expect([...store.rowsOf("purchases_table")]).toEqual([]);
  });

  it("truncates a primary source mid-batch: records of earlier batches and of this one go, later ones stay", async () => {
    await apply([user(1, { vip: true }), user(2)]);
    const result = await apply([user(3, { vip: true }), change("users_table", "truncate", "", null), user(4, { vip: true }), change("users_table", "delete", "5", null)]);
    expect(store.recordIdsOf("users", undefined, 10)).toEqual(["4"]);
    expect(result.recordDelta).toEqual(new Map([["users", -1]]));
    expect(store.countOf("records", "users")).toBe(1);
    expect(store.membersOf("users", "vips")).toEqual(["4"]);
    expect(store.countOf("members", "vips")).toBe(1);
  });

  it("a completed snapshot removes the primary records it did not read, also those written earlier in its batch", async () => {
    await apply([user(1), user(2)]);
    const read = (id: number): Change => ({ ...user(id), op: "snapshot", snapshotId: "s1" });
    const complete: Change = { ...change("users_table", "marker", "", null), snapshotComplete: { snapshotId: "s1", sourceIds: ["users_table"] } };
    await apply([read(1), user(3), read(4), complete]);
    expect(store.recordIdsOf("users", undefined, 10)).toEqual(["1", "4"]);
    expect(store.countOf("records", "users")).toBe(2);
    expect(store.getRecord("users", "1")?.snapshot).toBe("s1");
    await apply([change("users_table", "update", "1", { id: 1, vip: true })]);
    expect(store.getRecord("users", "1")?.snapshot).toBeUndefined();
  });

  it("keeps only the chosen row of a max or most recent value, and chooses again from the stored rows when it goes", async () => {
    const purchases = Array.from({ length: 50 }, (_, i) => purchase(i + 1, { user_id: 1, amount: i + 1, state: "paid", sku: "A", created_at: new Date(T - (i + 1) * 1000) }));
    await apply([user(1), ...purchases]);
    expect(store.aggregateOf("users", "1", "max_amount")).toMatchObject({ kind: "keyed", method: "max", best: ["50", 50, 50] });
    expect(store.aggregateOf("users", "1", "last_purchase_at")).toMatchObject({ kind: "keyed", method: "most recent value", best: ["1", T - 1000, T - 1000] });
    await apply([change("purchases_table", "delete", "50", null), change("purchases_table", "delete", "1", null)]);
    expect(store.getRecord("users", "1")?.values).toMatchObject({ max_amount: 49, last_purchase_at: T - 2000, purchase_count: 48 });
    // A chosen row that gets worse competes again with the others.
    await apply([change("purchases_table", "update", "49", { id: 49, user_id: 1, amount: 1.5, state: "paid", sku: "A", created_at: new Date(T - 49_000) })]);
    expect(store.getRecord("users", "1")?.values.max_amount).toBe(48);
  });

  it("treats a replayed change as a no-op", async () => {
    const insert = purchase(10, { user_id: 1, amount: 10, state: "paid", sku: "A", created_at: T });
    await apply([user(1), insert]);
    const before = { record: store.getRecord("users", "1"), outbox: store.outboxOf("crm") };
    const replay = await apply([insert, user(1)]);
    expect(replay.exports).toBe(0);
    expect({ record: store.getRecord("users", "1"), outbox: store.outboxOf("crm") }).toEqual(before);
  });

  it("plans exports with old and new state, a newer one superseding the unsent older one in its place", async () => {
    await apply([user(1, { email: "a@example.com" })]);
    await apply([purchase(10, { user_id: 1, amount: 150, state: "paid", sku: "A", created_at: T - DAY }, 1_700_000_000_500)]);
    const outbox = store.outboxOf("crm");
    expect(outbox).toEqual([
      {
        // Never attempted: replaced under its seq (its place in the queue), one revision on.
        seq: 1,
        rev: 1,
        // The user's insert, the first change it carries (commitTime is the newest's).
        waitingSince: 1_700_000_000_000,
        destinationId: "crm",
        recordId: "1",
        oldRecordProperties: {},
        newRecordProperties: { id: 1, email: "a@example.com", ltv: 150 },
        oldGroups: [],
        newGroups: ["High Value", "Recent"],
        toDelete: false,
        updateOnly: false,
        commitTime: 1_700_000_000_500,
        base: null,
      },
    ]);
  });

  it("sets a dead letter aside, with its reason, for a change of an unknown source", async () => {
    const bad = change("orders_table", "insert", "1", { id: 1 });
    const result = await apply([bad, user(1)]);
    expect(result.deadLetters).toBe(1);
    expect(store.sourceDeadLetters().map(({ reason, sourceId, change: c }) => ({ reason, sourceId, change: c }))).toEqual([
      { reason: 'no source "orders_table" in the config', sourceId: "orders_table", change: bad },
    ]);
    expect(store.getRecord("users", "1")).toBeDefined();
  });

  it("stores the batch's positions in the same transaction", async () => {
    const changes = [user(1), user(2)];
    await apply(changes);
    expect(store.position("db")).toBe(changes[1]?.position.position);
  });

  it("leaves a relative-date group at the exact millisecond, from the time index", async () => {
    const bought = T - DAY;
    await apply([user(1), purchase(10, { user_id: 1, amount: 1, state: "paid", sku: "A", created_at: bought })]);
    expect(store.getRecord("users", "1")?.groups).toContain("recent");
    // "within the last 3 days": still in at bought + 3 days, out one millisecond later.
    const leaves = bought + 3 * DAY + 1;
    expect(store.boundaryOf("users", "recent", "1")).toBe(leaves);
    expect(store.nextBoundaryInstant()).toBe(leaves);
    expect(await sweep(store, domain, leaves - 1)).toBeUndefined();
    expect(store.getRecord("users", "1")?.groups).toContain("recent");
    const swept = await sweep(store, domain, leaves);
    expect(swept?.memberDelta).toEqual(new Map([["recent", -1]]));
    expect(store.getRecord("users", "1")?.groups).not.toContain("recent");
    expect(store.boundaryOf("users", "recent", "1")).toBeUndefined();
    expect(store.nextBoundaryInstant()).toBeUndefined();
  });

  it("backfills a group over existing records", async () => {
    await apply([user(1, { vip: true }), user(2, { vip: false }), user(3, { vip: true })]);
    const withNewGroup = coreDomain([{ class: "group", id: "not_vip", modelId: "users", rules: [{ propertyId: "vip", op: "eq", match: false }] }]);
    let after: string | undefined;
    let chunks = 0;
    do {
      after = (await backfillChunk(store, withNewGroup, "users", "not_vip", after, T, 2))?.last;
      chunks += 1;
    } while (after !== undefined);
    expect(chunks).toBe(3);
    expect(store.membersOf("users", "not_vip")).toEqual(["2"]);
  });
});

describe("the state layout", () => {
  it("refuses a state written in another layout, naming both", async () => {
    const dir = mkdtempSync(join(tmpdir(), "core-layout-"));
    try {
      const store = Store.open(dir);
      await applyBatch(store, domain, [user(1)], T);
      await store.putMeta("format", 1);
      await store.close();
      expect(() => Store.open(dir)).toThrow(`the state in ${dir} has layout 1, this version reads layout ${STATE_FORMAT}: start from an empty --state directory`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a state of a newer layout, naming the newer version", async () => {
    const dir = mkdtempSync(join(tmpdir(), "core-layout-"));
    try {
      const store = Store.open(dir);
      await store.putMeta("format", STATE_FORMAT + 1);
      await store.close();
      expect(() => Store.open(dir, { lock: true })).toThrow(`the state in ${dir} has layout ${STATE_FORMAT + 1}, written by a newer version; this version reads layouts up to ${STATE_FORMAT}: run the newer version on it (nothing was changed)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("opens a --state directory whose name has a dot (state.bak) as a directory", async () => {
    const parent = mkdtempSync(join(tmpdir(), "core-dotted-"));
    try {
      const dir = join(parent, "state.bak");
      const store = Store.open(dir, { lock: true });
      await applyBatch(store, domain, [user(1)], T);
      await store.close();
      expect(readdirSync(dir)).toEqual(expect.arrayContaining(["data.mdb", "lock.mdb"]));
      expect(readdirSync(parent)).toEqual(["state.bak"]);
      const again = Store.open(dir, { readOnly: true });
      expect(again.getRecord("users", "1")?.id).toBe("1");
      await again.close();
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it("takes a layout 2 state over: its index of members is dropped, the records keep their groups", async () => {
    const dir = mkdtempSync(join(tmpdir(), "core-layout-"));
    try {
      const store = Store.open(dir);
      await applyBatch(store, domain, [user(1, { vip: true }), user(2, { vip: false })], T);
      await store.putMeta("format", 2);
      await store.close();
      const old = open({ path: dir, maxDbs: 32 });
      await old.openDB<true, (string | number)[]>({ name: "members" }).put(["users", "vips", "1"], true);
      await old.close();
      const reopened = Store.open(dir, { lock: true });
      expect(reopened.getMeta("format")).toBe(STATE_FORMAT);
      expect(reopened.membersOf("users", "vips")).toEqual(["1"]);
      expect(reopened.countOf("members", "vips")).toBe(1);
      await reopened.close();
      const raw = open({ path: dir, maxDbs: 32 });
      expect([...raw.openDB({ name: "members" }).getKeys()]).toEqual([]);
      await raw.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a failed write transaction", () => {
  it("makes the state refuse further writes until it is reopened, and loses nothing committed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "core-failed-"));
    try {
      let store = Store.open(dir);
      await applyBatch(store, domain, [user(1)], T);
      await expect(
        applyBatch(store, domain, [user(2)], T, () => {
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      await expect(applyBatch(store, domain, [user(3)], T)).rejects.toThrow("the state refuses writes after a failed transaction (boom); restart to reopen it");
      await expect(store.completeExports("crm", [])).rejects.toThrow("refuses writes");
      await store.close();
      store = Store.open(dir);
      expect(store.recordIdsOf("users", undefined, 10)).toEqual(["1"]);
      await applyBatch(store, domain, [user(3)], T);
      expect(store.recordIdsOf("users", undefined, 10)).toEqual(["1", "3"]);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
