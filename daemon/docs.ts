// `npm run docs`: writes the generated config reference into README.md and the JSON Schema file.
// With --check, writes nothing and exits 1 when either is stale.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { generatedFiles } from "./config/reference.js";
import { readPackageInfo } from "./package-info.js";

function main(): void {
  const root = dirname(readPackageInfo().path);
  const check = process.argv.includes("--check");
  let stale = 0;
  for (const file of generatedFiles(root)) {
    if (file.current === file.wanted) continue;
    stale += 1;
    if (check) console.error(`${file.path} is stale: run npm run docs`);
    else {
      mkdirSync(dirname(file.path), { recursive: true });
      writeFileSync(file.path, file.wanted);
      console.log(`wrote ${file.path}`);
    }
  }
  if (check && stale > 0) process.exitCode = 1;
}

main();
