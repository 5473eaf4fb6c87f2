// The load generator of bench/api.ts: GET /api/v1/records lookups over keep-alive connections, in a
// process of its own that bench/api.ts starts under `nice` (it stands for clients on other machines).
// A process, not a worker thread: every thread of it runs below the daemon and the webhook receiver,
// V8's garbage-collection helpers included, which a worker thread shares with the benchmark's process
// at that process's priority. Plain JavaScript (no loader thread). Phases come by IPC message,
// { seconds, rate } (rate 0: closed loop, `concurrency` in flight), and each is answered with
// { times, statuses, skipped, seconds }: each lookup's latency in ms, counted from when it was due.
import { Pool } from "undici";

const { origin, key, users, concurrency } = JSON.parse(process.env.BENCH_CLIENT ?? "{}");
if (!origin || !process.send) {
  process.stderr.write("bench/api-client.mjs runs only as bench/api.ts's load generator\n");
  process.exit(2);
}
// One pool for every phase: its connections stay open, as a client's would.
const pool = new Pool(origin, { connections: 64, pipelining: 1 });
const headers = { authorization: `Bearer ${key}` };
let n = 0;

process.on("message", ({ seconds, rate }) => {
  const times = [];
  const statuses = {};
  let inFlight = 0;
  let skipped = 0;
  async function one(due) {
    inFlight += 1;
    const id = 1 + Math.floor(Math.random() * users);
    const path = n++ % 2 === 0 ? `/api/v1/records/users?user_id=${id}` : `/api/v1/records/users?email=user${id}%40example.com`;
    try {
      const { statusCode, body } = await pool.request({ path, method: "GET", headers });
      await body.dump();
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
    } catch {
      statuses.error = (statuses.error ?? 0) + 1;
    }
    inFlight -= 1;
    times.push(performance.now() - due);
  }
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const finish = () => process.send({ times, statuses, skipped, seconds: (performance.now() - started) / 1000 });
  if (rate) {
    // Open loop: a lookup is due every 1/rate s from the start; one that waited in this process
    // (a late timer, a busy core) counts from when it was due, not from when it was sent.
    const pending = [];
    let sent = 0;
    const tick = () => {
      const now = performance.now();
      // Lookup k is due at k/rate s: the ones due by now (the first at once).
      const due = Math.min(Math.floor(((now - started) / 1000) * rate) + 1, seconds * rate);
      for (; sent < due; sent += 1) {
        const at = started + (sent * 1000) / rate;
        // Up to a second of lookups waits in the pool's queue (counted late, from when due); beyond
        // that the daemon is not keeping up, and the lookup is skipped and reported as such.
        if (inFlight >= rate) {
          skipped += 1;
          continue;
        }
        pending.push(one(at));
      }
      if (now < deadline) setTimeout(tick, 1);
      else Promise.all(pending).then(finish);
    };
    tick();
  } else {
    const loop = async () => {
      while (performance.now() < deadline) await one(performance.now());
    };
    Promise.all(Array.from({ length: concurrency }, loop)).then(finish);
  }
});
process.on("disconnect", () => void pool.close().finally(() => process.exit(0)));
