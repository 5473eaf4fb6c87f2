// A CPU profile of one stretch of a benchmark (node:inspector), written where BENCH_PROFILE names when
// it is set: what the closing notes' "where the time goes" tables are read from.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { SourceMap } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export async function profiled<T>(label: string, body: () => Promise<T>): Promise<T> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return body();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    return await body();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(`${dir}/${label}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** A CPU profile as `--cpu-prof` and the inspector write it. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber?: number; columnNumber?: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * The profile with each frame of the bundled daemon (`dist/daemon/program.js` and its chunks) moved back
 * to the file it was built from, through the bundle's source maps: a library's frame to its file under
 * node_modules/, the daemon's own to its compiled twin under dist/ (`core/apply.ts` reads as
 * `dist/core/apply.js`), so the parts below match either build; the same for a frame of a TypeScript
 * file run through tsx (the in-process benchmarks). Frames of files without a map stay.
 */
export function unbundled(profile: CpuProfile): CpuProfile {
  const maps = new Map<string, { map: SourceMap; dir: string } | undefined>();
  const mapOf = (file: string) => {
    if (!maps.has(file)) {
      const path = `${file}.map`;
      maps.set(file, existsSync(path) ? { map: new SourceMap(JSON.parse(readFileSync(path, "utf8")) as ConstructorParameters<typeof SourceMap>[0]), dir: dirname(path) } : undefined);
    }
    return maps.get(file);
  };
  const nodes = profile.nodes.map((node) => {
    const { url, lineNumber, columnNumber } = node.callFrame;
    if (!url.startsWith("file:")) return node;
    if (url.endsWith(".ts")) {
      // The source itself, run through tsx (the in-process benchmarks).
      const own = relative(ROOT, fileURLToPath(url));
      return own.startsWith("..") || own.startsWith("node_modules/") ? node : { ...node, callFrame: { ...node.callFrame, url: pathToFileURL(join(ROOT, "dist", own.replace(/\.ts$/, ".js"))).href } };
    }
    // A bundle's file, under the build's dist/daemon/ (this checkout's or another's, BENCH_CLI).
    const file = fileURLToPath(url);
    const bundle = /^(.*)\/dist\/daemon\/(?:program\.js|chunks\/[^/]+\.js)$/.exec(file);
    if (!bundle || lineNumber === undefined || lineNumber < 0) return node;
    const found = mapOf(file);
    const entry = found?.map.findEntry(lineNumber, columnNumber ?? 0) as { originalSource?: string } | undefined;
    if (!found || !entry?.originalSource) return node;
    const source = resolve(found.dir, entry.originalSource);
    const root = bundle[1] as string;
    const own = relative(root, source);
    const original = own.startsWith("node_modules/") || own.startsWith("..") ? source : join(root, "dist", own.replace(/\.ts$/, ".js"));
    return { ...node, callFrame: { ...node.callFrame, url: pathToFileURL(original).href } };
  });
  return { ...profile, nodes };
}

/**
 * The parts of the daemon's work, in the order a sample's stack is matched against them from its leaf
 * up: a sample counts once, in the first part one of its frames belongs to (so the LMDB work and the
 * encoding done for an identity lookup count as LMDB and encoding). Matched on the frame's file (the
 * built code under dist/ and the libraries) and, inside core/apply, its function.
 */
export const PROFILE_PARTS: { part: string; what: string; test: (fn: string, url: string) => boolean }[] = [
  { part: "garbage collection", what: "", test: (fn) => fn === "(garbage collector)" },
  { part: "start-up", what: "module loading and compiling (whenever it happens; nearly all of it before the first change)", test: (fn, url) => /node:internal\/modules|internal\/bootstrap/.test(url) || /^(compileForInternalLoader|wrapSafe|compileSourceTextModule)$/.test(fn) },
  { part: "encoding", what: "msgpack values and ordered-binary keys of the state, both ways", test: (_, url) => /node_modules\/(msgpackr|ordered-binary)\//.test(url) },
  { part: "LMDB writes", what: "lmdb-js's put and remove: `writeInstructions` runs LMDB's own put inside the transaction", test: (_, url) => /node_modules\/lmdb\/write\.js/.test(url) },
  { part: "LMDB reads", what: "lmdb-js's get and range reads (`getBinaryFast`)", test: (_, url) => /node_modules\/lmdb\//.test(url) },
  { part: "metrics", what: "prom-client and the daemon's metrics", test: (_, url) => /node_modules\/prom-client\/|\/dist\/metrics\//.test(url) },
  { part: "logging", what: "pino and the daemon's logger", test: (_, url) => /node_modules\/(pino|sonic-boom|thread-stream)\/|\/dist\/daemon\/logger\.js/.test(url) },
  { part: "pgoutput decoding", what: "pg, pg-protocol and pg-logical-replication's parser, and the daemon's postgres connector turning messages into changes", test: (_, url) => /node_modules\/(pg-logical-replication|pg-protocol|pg)\/|\/dist\/connectors\/postgres\//.test(url) },
  { part: "Kafka decoding", what: "kafkajs's fetches and record batches, and the daemon's kafka connector decoding Debezium's envelopes (their `JSON.parse` included)", test: (_, url) => /node_modules\/kafkajs\/|\/dist\/connectors\/kafka\//.test(url) },
  { part: "group settling", what: "evaluating the affected groups' rules, membership flags and transitions", test: (fn, url) => /\/dist\/core\/rules\.js/.test(url) || (/\/dist\/core\/apply\.js/.test(url) && /^(settle|membershipFlags|groupList|reconcileMembership|groupsToEvaluate|transitionsOf|finish)$/.test(fn)) },
  { part: "normalisation", what: "typing and normalising values, change detection (`normalize`, `setProperty`)", test: (fn, url) => /\/dist\/core\/values\.js/.test(url) || (/\/dist\/core\/apply\.js/.test(url) && /^(normalize|setProperty)$/.test(fn)) },
  { part: "identity lookups", what: "finding a row's record: its identity, unique values, rows waiting on them", test: (fn, url) => /\/dist\/core\/apply\.js/.test(url) && /^(identityOf|claimUnique|releaseUnique|uniqueValueKey|touch)$/.test(fn) },
  { part: "aggregate updates", what: "aggregates folded with a row's contribution, rows attached and detached", test: (fn, url) => /\/dist\/core\/aggregates\.js/.test(url) || (/\/dist\/core\/apply\.js/.test(url) && /^(contribute|aggregateFromRows|attach|detach|setAggregates)$/.test(fn)) },
  { part: "applying rows", what: "the rest of the core: rows stored and merged, records written", test: (_, url) => /\/dist\/core\//.test(url) },
  { part: "pipeline", what: "the RxJS pipeline, batching, transactions, acknowledging (streams/, daemon/)", test: (_, url) => /node_modules\/rxjs\/|\/dist\/(streams|daemon)\//.test(url) },
  { part: "native, outside JavaScript", what: "V8's `(program)`: the event loop and other native work", test: (fn) => fn === "(program)" },
];

/** The busy time of a profile's thread (all but idle), and each part's share of it (the rest is "other"). */
export function profileParts(profile: CpuProfile): { busySeconds: number; parts: { part: string; what: string; share: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const partOf = new Map<number, string>();
  const classify = (leaf: number): string => {
    const known = partOf.get(leaf);
    if (known !== undefined) return known;
    let found = "other";
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      const match = frame && PROFILE_PARTS.find((p) => p.test(frame.functionName, frame.url));
      if (match) {
        found = match.part;
        break;
      }
    }
    partOf.set(leaf, found);
    return found;
  };
  const totals = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((sample, i) => {
    const fn = byId.get(sample)?.callFrame.functionName;
    if (fn === "(idle)") return;
    const delta = profile.timeDeltas[i] ?? 0;
    busy += delta;
    const part = classify(sample);
    totals.set(part, (totals.get(part) ?? 0) + delta);
  });
  const parts = [...PROFILE_PARTS, { part: "other", what: "Node's own modules, the rest" }].map(({ part, what }) => ({ part, what, share: busy > 0 ? (totals.get(part) ?? 0) / busy : 0 }));
  return { busySeconds: busy / 1e6, parts: parts.sort((a, b) => b.share - a.share) };
}

/** The self time of a profile's busiest functions, as shares of its busy time. */
export function profileTop(profile: CpuProfile, count: number): { name: string; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((sample, i) => {
    const frame = byId.get(sample)?.callFrame;
    if (!frame || frame.functionName === "(idle)") return;
    const delta = profile.timeDeltas[i] ?? 0;
    busy += delta;
    const file = frame.url.replace(/^.*node_modules\//, "").replace(/^.*\/dist\//, "");
    const name = `${frame.functionName || "(anonymous)"}${file ? ` (${file})` : ""}`;
    self.set(name, (self.get(name) ?? 0) + delta);
  });
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, t]) => ({ name, share: t / busy }));
}

/** Where a profile's time went, as the benchmarks print it: a table of its parts, then its top functions. */
export function profileReport(what: string, file: string, profile: ReturnType<typeof profileParts> & { top: ReturnType<typeof profileTop> }): string {
  return [
    `where ${what} spent ${profile.busySeconds.toFixed(2)} s of CPU (${file}):`,
    "| part | share | what |",
    "|---|---|---|",
    ...profile.parts.map((p) => `| ${p.part} | ${(p.share * 100).toFixed(1)} % | ${p.what} |`),
    `top by self time: ${profile.top.map((t) => `${t.name} ${(t.share * 100).toFixed(1)} %`).join(", ")}`,
  ].join("\n");
}

/** The report of the profile `profiled(label, ...)` wrote, when BENCH_PROFILE is set. */
export function profiledReport(what: string, label: string): string | undefined {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return undefined;
  const file = `${dir}/${label}.cpuprofile`;
  const cpu = unbundled(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
  return profileReport(what, file, { ...profileParts(cpu), top: profileTop(cpu, 10) });
}
