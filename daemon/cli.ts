#!/usr/bin/env node
// The `grouparoo-stream` command line: parses arguments and dispatches to the daemon's commands.
import { Command } from "commander";
import { readPackageInfo } from "./package-info.js";

export function buildProgram(): Command {
  const info = readPackageInfo();
  const program = new Command();
  program
    .name("grouparoo-stream")
    .description(info.description)
    .version(info.version, "-V, --version", "print the version and exit")
    .showHelpAfterError()
    .showSuggestionAfterError();
  return program;
}

await buildProgram().parseAsync(process.argv);
