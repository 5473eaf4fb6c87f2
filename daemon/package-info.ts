// The package's own name and version, read from the package.json above this module (works both
// from the TypeScript sources and from the compiled dist/ tree).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface PackageInfo {
  name: string;
  version: string;
  description: string;
  /** Absolute path of the package.json read. */
  path: string;
}

export function readPackageInfo(from: string = dirname(fileURLToPath(import.meta.url))): PackageInfo {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const parsed = JSON.parse(readFileSync(candidate, "utf8")) as Partial<PackageInfo>;
      if (parsed.name === "grouparoo-stream") {
        return { name: parsed.name, version: parsed.version ?? "0.0.0", description: parsed.description ?? "", path: candidate };
      }
    }
    if (dirname(dir) === dir) throw new Error(`package.json of grouparoo-stream not found above ${from}`);
  }
}
