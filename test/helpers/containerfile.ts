// A Containerfile (Dockerfile syntax) read into stages and instructions, for the static checks and
// for running the build stage's steps as a script (no container engine runs on the test machines).
import { readFileSync } from "node:fs";

export interface Instruction {
  keyword: string;
  /** --name=value options before the arguments (COPY --from, HEALTHCHECK --interval, ...). */
  flags: Record<string, string>;
  /** The arguments after the flags, as written. */
  args: string;
  /** The arguments in exec (JSON array) form, when written so. */
  exec?: string[];
  line: number;
}

export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

export function parseContainerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const start = i;
    let line = lines[i] ?? "";
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i += 1;
      const next = lines[i] ?? "";
      if (/^\s*#/.test(next)) continue; // comments inside a continuation are dropped
      line = line.replace(/\\\s*$/, " ") + next.trim();
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) throw new Error(`line ${start + 1}: not an instruction: ${line}`);
    const keyword = (match[1] as string).toUpperCase();
    let rest = (match[2] as string).trim();
    const flags: Record<string, string> = {};
    for (let flag = /^--([\w-]+)=(\S+)\s*/.exec(rest); flag; flag = /^--([\w-]+)=(\S+)\s*/.exec(rest)) {
      flags[flag[1] as string] = flag[2] as string;
      rest = rest.slice(flag[0].length);
    }
    const instruction: Instruction = { keyword, flags, args: rest, line: start + 1 };
    const json = keyword === "HEALTHCHECK" ? rest.replace(/^CMD\s+/, "") : rest;
    if (json.startsWith("[")) instruction.exec = JSON.parse(json) as string[];
    if (keyword === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!from) throw new Error(`line ${start + 1}: FROM ${rest}`);
      stages.push({ image: from[1] as string, name: from[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`line ${start + 1}: ${keyword} before FROM`);
    stage.instructions.push(instruction);
  }
  return stages;
}

export function readContainerfile(path: string): Stage[] {
  return parseContainerfile(readFileSync(path, "utf8"));
}

/** The instructions of a stage with this keyword. */
export const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
