// The Node flags the daemon runs with: the `grouparoo-stream` launcher's first line (cli.ts) and the
// container's entrypoint pass them; benchmarks, tests and the demo that start dist/daemon/cli.js with
// `node` pass the same (test/unit/deploy/launcher.test.ts holds cli.ts, package.json and, with
// containerfile.test.ts, the Containerfile to this list). README, "Node flags", says what each costs:
// - a young generation of two 32 MiB semi-spaces, where Node's default is 16 (more memory for speed:
//   a batch's short-lived objects die young instead of being promoted; the launcher passed 64 before);
// - the old generation collected once it holds 1.5 times what survived the last full collection,
//   where V8 lets it grow to up to 4 times (a little speed for memory: a catch-up's promoted garbage
//   goes sooner, and RSS stays lower).
export const NODE_FLAGS = ["--max-semi-space-size=32", "--heap-growing-percent=50"] as const;
