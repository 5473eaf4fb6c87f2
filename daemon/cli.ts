#!/usr/bin/env -S node --max-semi-space-size=32 --heap-growing-percent=50
// The `grouparoo-stream` executable. It imports nothing else statically: a SIGHUP is caught before the
// command line's modules are even read (early-signals.ts). Then a long-running command refuses an
// open-file limit it cannot run under (open-files.ts), and the program (program.ts) is loaded.
import "./early-signals.js";

(await import("./open-files.js")).refuseLowOpenFileLimit(process.argv);
const { main } = await import("./program.js");
await main(process.argv);
