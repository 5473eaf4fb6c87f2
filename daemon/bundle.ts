// `npm run build`'s second step, after tsc: the daemon's two entry modules in dist/ (the program the
// executable imports, and the API listener's thread) are each replaced by a bundle of themselves and
// what they import, with esbuild. Node then reads, resolves and compiles a few files instead of about
// 1,100 ES and CommonJS modules: `run` reached its replication stream in about 0.4 s instead of
// 0.55 s after spawn, and /readyz answered after about 0.6 s instead of 1.0 s (README, Benchmarks).
// It runs through tsx (a development dependency, like esbuild), and tsconfig.build.json leaves it out
// of dist/, which ships without them.
//
// Each command's modules stay a chunk of their own (dist/daemon/chunks/), read when the command runs,
// as its dynamic import read them before. The rest of dist/ stays as tsc wrote it (the modules tests
// and tools import). Source maps chain to the TypeScript's paths and lines (node --enable-source-maps),
// without the sources' text (tsc's own maps carry none either).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

/**
 * Packages left to Node's resolution: native addons and packages that load their own files by path
 * (lmdb and msgpackr's native parts, pino's transports in worker threads), an optional native driver
 * pg looks for, packages the daemon requires only when a config names them (kafkajs, undici), and
 * rxjs, which source plugins import too: a plugin's Observables and the daemon's operators stay one
 * copy of the library.
 */
const EXTERNAL = ["lmdb", "msgpackr", "fs-ext", "unix-dgram", "pino", "pino-pretty", "thread-stream", "pg-native", "kafkajs", "undici", "rxjs"];

const daemon = fileURLToPath(new URL("../dist/daemon/", import.meta.url));

await build({
  entryPoints: [`${daemon}program.js`, `${daemon}api/reader.js`],
  outdir: daemon,
  outbase: daemon,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  format: "esm",
  platform: "node",
  target: "node20",
  external: EXTERNAL,
  // CommonJS packages inside the bundle require Node's built-in modules.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  sourcemap: "linked",
  sourcesContent: false,
  logLevel: "warning",
});
