// A config change undone part-way converges, on real LMDB: a model's removal cut short during its
// destination's removal (accounts deleted at the source meanwhile), a destination's reset cut short
// (a record changed meanwhile), and a primary source moved to another table restarted during its
// re-read, which resumes. Each compared with a fresh state, or with what a fresh destination holds.
import { describe, expect, it } from "vitest";
import type { SourceConnector } from "../../../connectors/types.js";
import type { Store } from "../../../state/store.js";
import { applyBatch } from "../../../streams/batch.js";
import { listRuns, type Runs, runStream } from "../../../streams/runs.js";
import { user } from "../../helpers/core.js";
import { A, accountChange, accountRow, accountsObjects, chunkedRereader, compiled, deliver, replace, runner, T, undoneStates, usersTableRows, USERS, type Obj, type Rereader } from "../../helpers/undone.js";

describe("a config change undone part-way: destinations and restarts", () => {
  const states = undoneStates("runs-undone-destinations-");
  const built = states.built;
  const settled = (store: Store, objects: Obj[], needsReread: (id: string) => boolean = () => true, connector?: Rereader) => states.settled(store, objects, { needsReread, ...(connector ? { connector } : {}) });

  // ---------------------------------------------------------------------------------------------
  const ACCOUNTS = 2000;
  const A2 = () => [...A(), ...accountsObjects(true)];

  it("a model's removal cut during its destination's removal, accounts deleted at the source meanwhile, undone: they are deleted at the destination", { timeout: 60_000 }, async () => {
    const store = await built("state", A2(), Array.from({ length: ACCOUNTS }, (_, i) => accountChange(i + 1, "db", String(2_000_000 + i))));
    const remote = new Map<string, Obj>();
    await deliver(store, "acct_hook", remote);
    expect(remote.size).toBe(ACCOUNTS);
    // Ten accounts change (their exports queued, not yet sent).
    await applyBatch(store, compiled(A2()).domain, Array.from({ length: 10 }, (_, i) => ({ ...accountChange(500 + i, "db", String(3_000_000 + i), { id: 500 + i, plan: "big" }), op: "update" as const })), T);
    // B: accounts removed (with its destination), cut once the destination's removal dropped its outbox.
    {
      const { domain, definitions } = compiled(A());
      const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-destination destination acct_hook", "remove-model model accounts"]);
      await stopped;
    }
    // Meanwhile accounts 1..100 are deleted at the source (B does not read it): the table holds 101..2000.
    const rereader = (runs: () => Runs): SourceConnector => {
      const { domain } = compiled(A2());
      return {
        reread: async (request: { runId: string }) => {
          void (async () => {
            const cs = Array.from({ length: ACCOUNTS - 100 }, (_, i) => {
              const n = i + 101;
              return accountChange(n, runStream(request.runId), n === ACCOUNTS ? "complete" : JSON.stringify({ rows: i + 1 }), n >= 500 && n < 510 ? { id: n, plan: "big" } : accountRow(n));
            });
            await applyBatch(store, domain, cs, T);
            runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), "complete"]]), commitTimes: new Map(), seconds: 0 });
          })();
        },
      } as unknown as SourceConnector;
    };
    const planned = await settled(store, A2(), () => true, rereader);
    await deliver(store, "acct_hook", remote);
    const gone = [...remote.keys()].filter((id) => Number(id) <= 100).length;
    expect({ planned, records: store.countOf("records", "accounts"), remote: remote.size, gone }).toEqual({ planned, records: ACCOUNTS - 100, remote: ACCOUNTS - 100, gone: 0 });
  });

  it("a model's removal cut while its destination's outbox was half dropped, accounts never sent deleted at the source meanwhile, undone: their queued creates are not sent", { timeout: 60_000 }, async () => {
    // 2,000 accounts delivered, then 6,000 more whose creates wait in the outbox: more than one chunk
    // of the destination's removal drops (5,000 keys), so the last 1,000 are still queued when it is cut.
    const store = await built("state", A2(), Array.from({ length: ACCOUNTS }, (_, i) => accountChange(i + 1, "db", String(2_000_000 + i))));
    const remote = new Map<string, Obj>();
    await deliver(store, "acct_hook", remote);
    const later = Array.from({ length: 6000 }, (_, i) => accountChange(ACCOUNTS + 1 + i, "db", String(3_000_000 + i)));
    for (let i = 0; i < later.length; i += 1000) await applyBatch(store, compiled(A2()).domain, later.slice(i, i + 1000), T);
    expect(store.outboxDepth("acct_hook")).toBe(6000);
    {
      const { domain, definitions } = compiled(A());
      const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
      await runs.start(definitions, () => true, false);
      await stopped;
    }
    expect(store.outboxDepth("acct_hook")).toBe(1000);
    // Ten of those creates are being sent (unanswered) when the config goes back.
    const outbox = store.outboxFor("acct_hook");
    const inFlight = await outbox.markSending(outbox.pending(10, T, new Set(), new Set()));
    expect(inFlight.map((e) => e.recordId)).toEqual(Array.from({ length: 10 }, (_, i) => String(ACCOUNTS + 5001 + i)));
    // Meanwhile the last 1,000 accounts (never sent) are deleted at the source: the table holds 1..7000.
    const TABLE = ACCOUNTS + 5000;
    const rereader = (runs: () => Runs): SourceConnector => {
      const { domain } = compiled(A2());
      return {
        reread: async (request: { runId: string }) => {
          void (async () => {
            const cs = Array.from({ length: TABLE }, (_, i) => accountChange(i + 1, runStream(request.runId), i + 1 === TABLE ? "complete" : JSON.stringify({ rows: i + 1 })));
            await applyBatch(store, domain, cs, T);
            runs().committed({ kind: "changes", changes: cs.length, positions: new Map([[runStream(request.runId), "complete"]]), commitTimes: new Map(), seconds: 0 });
          })();
        },
      } as unknown as SourceConnector;
    };
    await settled(store, A2(), () => true, rereader);
    // The creates not sent are dropped; each one being sent has its delete queued behind it.
    const queuedBeyond = store.outboxOf("acct_hook", 100_000).filter((e) => Number(e.recordId) > TABLE);
    expect(queuedBeyond.map((e) => `${e.recordId}:${e.toDelete ? "delete" : e.sending ? "sending" : "create"}`).sort()).toEqual(
      inFlight.flatMap((e) => [`${e.recordId}:delete`, `${e.recordId}:sending`]).sort(),
    );
    await deliver(store, "acct_hook", remote);
    // A fresh daemon's destination holds the table's 7,000 accounts: so does this one.
    const beyond = [...remote.keys()].filter((id) => Number(id) > TABLE).length;
    expect({ records: store.countOf("records", "accounts"), remote: remote.size, beyond }).toEqual({ records: TABLE, remote: TABLE, beyond: 0 });
  });

  /** A second webhook app, and the destination moved to it (a reset). */
  const A3 = () => [...A(), { class: "app", id: "hooks2", type: "webhook", options: { url: "https://other.example.com" } }];
  const otherApp = () => A3().map((o) => (o.class === "destination" ? { ...o, appId: "hooks2" } : o));

  it("a destination's app change (a reset) cut part-way, then undone: a record changed meanwhile is sent to the original destination", { timeout: 60_000 }, async () => {
    const B = otherApp;
    const store = await built("state", A3());
    const remoteA = new Map<string, Obj>();
    const remoteB = new Map<string, Obj>();
    await deliver(store, "crm", remoteA);
    expect(remoteA.size).toBe(USERS);
    {
      const { domain, definitions } = compiled(B());
      const { runs, stopped } = runner(store, domain, { stopWhen: () => listRuns(store).some((r) => r.state === "running" && r.processed > 0) });
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target} ${JSON.stringify(r.spec)}`)).toEqual([expect.stringContaining('"reset":true')]);
      await stopped;
      // Streaming under B: user 2000's email changes; delivered to B's app.
      await applyBatch(store, domain, [{ ...user(2000, { email: "new2000@example.com", first_name: "Ada", vip: true }, T), op: "update" }], T);
      await deliver(store, "crm", remoteB);
    }
    const planned = await settled(store, A3());
    await deliver(store, "crm", remoteA);
    expect({ planned, email2000: remoteA.get("2000")?.email }).toEqual({ planned: ["export destination crm"], email2000: "new2000@example.com" });
  });

  it("the same with its Runs not cut (the control)", { timeout: 60_000 }, async () => {
    const B = otherApp;
    const store = await built("state", A3());
    const remoteA = new Map<string, Obj>();
    const remoteB = new Map<string, Obj>();
    await deliver(store, "crm", remoteA);
    await settled(store, B());
    await applyBatch(store, compiled(B()).domain, [{ ...user(2000, { email: "new2000@example.com", first_name: "Ada", vip: true }, T), op: "update" }], T);
    await deliver(store, "crm", remoteB);
    await settled(store, A3());
    await deliver(store, "crm", remoteA);
    expect(remoteA.get("2000")?.email).toBe("new2000@example.com");
  });

  const rereader = (store: Store, objects: Obj[], stopAfter: number, onStop: () => void, requests?: string[]) => chunkedRereader(store, objects, usersTableRows(objects), { stopAfter, onStop, ...(requests ? { requests } : {}) });
  const movedUsers = () => replace(A(), "users_table", (o) => ({ ...o, options: { table: "users2" } }));

  it("a primary source moved to another table, restarted during its re-read on the same config: the re-read resumes", { timeout: 60_000 }, async () => {
    const store = await built("state", A());
    {
      let stop!: () => void;
      const stoppedReread = new Promise<void>((resolve) => (stop = resolve));
      const { domain, definitions } = compiled(movedUsers());
      const { runs } = runner(store, domain, { connector: rereader(store, movedUsers(), 3, () => stop()) });
      const plan = await runs.start(definitions, () => true, false);
      expect(plan.runs.map((r) => `${r.spec.kind} ${r.target}`)).toEqual(["remove-source source users_table", "reread source users_table"]);
      await stoppedReread;
    }
    const before = listRuns(store).find((r) => r.kind === "reread");
    expect(before?.state).toBe("running");
    expect(store.position(runStream(before?.id ?? ""))).toBe(JSON.stringify({ rows: 1500 }));
    const seen: string[] = [];
    await settled(store, movedUsers(), () => true, rereader(store, movedUsers(), -1, () => undefined, seen));
    expect({ runs: listRuns(store).map((r) => `${r.kind}:${r.state}${r.error ? `:${r.error}` : ""}`), seen }).toEqual({
      runs: ["remove-source:complete", "reread:complete"],
      seen: [`${before?.id} from ${JSON.stringify({ rows: 1500 })}`],
    });
  });
});
