// The layers (ARCHITECTURE.md, "Layers"): the import graph of the sources, folder by folder, has no
// cycle, and each folder imports only the folders below it. The domain (core/) imports nothing of
// the project; state/ touches LMDB and nothing above it; connectors/ know the core, not the daemon.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = resolve(new URL("../..", import.meta.url).pathname);
const FOLDERS = ["core", "metrics", "state", "connectors", "streams", "daemon"] as const;
type Folder = (typeof FOLDERS)[number];

/** What each folder may import (besides itself). */
const ALLOWED: Record<Folder, readonly Folder[]> = {
  core: [],
  metrics: [],
  state: ["core"],
  connectors: ["core", "metrics"],
  streams: ["core", "metrics", "state", "connectors"],
  daemon: ["core", "metrics", "state", "connectors", "streams"],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith(".ts") ? [path] : [];
  });
}

function folderOf(path: string): Folder | undefined {
  const top = relative(root, path).split("/")[0];
  return (FOLDERS as readonly string[]).includes(top ?? "") ? (top as Folder) : undefined;
}

/** Every project import of every source file: [from file, to file]. */
function imports(): [string, string][] {
  const edges: [string, string][] = [];
  for (const folder of FOLDERS) {
    for (const file of sources(join(root, folder))) {
      const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
      for (const ref of info.importedFiles) {
        if (!ref.fileName.startsWith(".")) continue;
        edges.push([file, resolve(dirname(file), ref.fileName)]);
      }
    }
  }
  return edges;
}

describe("layers", () => {
  const edges = imports();
  const folderEdges = new Map<string, [string, string]>();
  for (const [from, to] of edges) {
    const a = folderOf(from);
    const b = folderOf(to);
    if (a && b && a !== b) folderEdges.set(`${a} -> ${b}`, [relative(root, from), relative(root, to)]);
  }

  it("reads the imports of every folder", () => {
    expect(edges.length).toBeGreaterThan(100);
    expect([...folderEdges.keys()]).toContain("daemon -> core");
  });

  it.each(FOLDERS)("%s imports only the folders below it", (folder) => {
    const wrong = [...folderEdges].filter(([edge]) => edge.startsWith(`${folder} -> `) && !ALLOWED[folder].includes(edge.split(" -> ")[1] as Folder));
    expect(wrong.map(([edge, [from, to]]) => `${edge} (${from} imports ${to})`)).toEqual([]);
  });

  it("has no cycle between folders", () => {
    const graph = new Map<string, string[]>();
    for (const edge of folderEdges.keys()) {
      const [a, b] = edge.split(" -> ") as [string, string];
      graph.set(a, [...(graph.get(a) ?? []), b]);
    }
    const cycles: string[] = [];
    const visit = (node: string, path: string[]) => {
      for (const next of graph.get(node) ?? []) {
        if (path.includes(next)) cycles.push([...path.slice(path.indexOf(next)), next].join(" -> "));
        else visit(next, [...path, next]);
      }
    };
    for (const folder of FOLDERS) visit(folder, [folder]);
    expect(cycles).toEqual([]);
  });
});
