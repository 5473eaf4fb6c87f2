// The Node flags the daemon runs with: the `grouparoo-stream` launcher's first line (cli.ts) and the
// container's entrypoint pass them; benchmarks, tests and the demo that start dist/daemon/cli.js with
// `node` pass the same (test/unit/launcher.test.ts holds cli.ts and the Containerfile to this list).
// Both trade a little speed for memory against V8's defaults (README, "Node flags"):
// - a young generation of two 32 MiB semi-spaces (Node's default is 16): a batch's short-lived
//   objects die young instead of being promoted;
// - the old generation's limit set at 1.5 times what survived the last full collection, where V8
//   picks up to 4 times: a catch-up's promoted garbage is collected sooner, and RSS stays lower.
export const NODE_FLAGS = ["--max-semi-space-size=32", "--heap-growing-percent=50"] as const;
