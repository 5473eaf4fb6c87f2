// Client libraries loaded on first use, not when the daemon starts: a config without Kafka never
// loads kafkajs, one without a webhook never loads undici (each costs tens of milliseconds of
// compiling at every start, and start-up is on an operator's restart path).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** A CommonJS package, required the first time the returned function is called. */
export function lazyPackage<T>(id: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(id) as T);
}
