import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../state/store.js";
import { validateObjects } from "../daemon/config/validate.js";
import { compileDomain } from "../streams/domain.js";
import type { Change } from "../streams/change.js";
const N = Number(process.env.N ?? 400_000), users = N / 2, B = 1000;
const result = validateObjects([
  { class: "app", id: "shop", type: "postgres", options: { connectionString: "postgres://x/y", slot: "e2e_slot", publication: "bench_pub", snapshot: "no_data" } },
  { class: "model", id: "users" },
  { class: "source", id: "users_table", type: "postgres-cdc", appId: "shop", modelId: "users", options: { table: "users" }, mapping: { id: "user_id" } },
  { class: "property", id: "user_id", type: "integer", unique: true, sourceId: "users_table", options: { column: "id" } },
  { class: "property", id: "email", type: "email", sourceId: "users_table", options: { column: "email" } },
  { class: "property", id: "score", type: "integer", sourceId: "users_table", options: { column: "score" } },
  { class: "group", id: "high", modelId: "users", rules: [{ propertyId: "score", op: "gt", match: users / 2 }] },
  { class: "group", id: "example", modelId: "users", rules: [{ propertyId: "email", op: "like", match: "%@example.com" }] },
].map((value, index) => ({ file: "bench", index, value })));
const domain = compileDomain(result.config!);
const changes: Change[] = [];
for (let i = 1; i <= users; i++) changes.push({ sourceId: "users_table", op: "insert", key: String(i), before: null, after: { id: i, email: `u${i}@example.com`, score: i }, position: { stream: "s", position: "0/" + i.toString(16) }, commitTime: Date.now() });
for (let i = 1; i <= users; i++) changes.push({ sourceId: "users_table", op: "update", key: String(i), before: null, after: { id: i, email: `u${i}@example.com`, score: i + 1 }, position: { stream: "s", position: "1/" + i.toString(16) }, commitTime: Date.now() });
const dir = mkdtempSync(join(tmpdir(), "simple-"));
const store = Store.open(dir);
const t0 = performance.now();
for (let i = 0; i < changes.length; i += B) await store.applyBatch(domain, changes.slice(i, i + B), Date.now());
const s = (performance.now() - t0) / 1000;
console.log("simple apply", Math.round(changes.length / s), "changes/s", (s * 1e6 / changes.length).toFixed(2), "µs/change");
await store.close(); rmSync(dir, { recursive: true, force: true });
