import { Store } from "../state/store.js";
const orig = Store.prototype.applyBatch;
let syncMs = 0, totalMs = 0, batches = 0, changes = 0; let firstAt = 0, lastAt = 0;
(Store.prototype as any).applyBatch = async function (this: any, domain: any, ch: any, now: number, extra?: any) {
  const t0 = performance.now(); if (!firstAt) firstAt = t0;
  const origTxn = this.root.transaction.bind(this.root);
  this.root.transaction = (cb: any) => origTxn(() => { const s = performance.now(); const r = cb(); syncMs += performance.now() - s; return r; });
  const r = await orig.call(this, domain, ch, now, extra);
  this.root.transaction = origTxn;
  totalMs += performance.now() - t0; batches++; changes += ch.length; lastAt = performance.now();
  return r;
};
process.on("exit", () => console.error(JSON.stringify({ batches, changes, avgBatch: changes / batches, syncMs: Math.round(syncMs), totalApplyMs: Math.round(totalMs), spanMs: Math.round(lastAt - firstAt) })));
await import(process.env.TARGET ?? "./pgoutput.js");
