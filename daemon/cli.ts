#!/usr/bin/env node
// The `grouparoo-stream` command line: parses arguments and dispatches to the daemon's commands.
import { Command } from "commander";
import { validateCommand } from "./commands/validate.js";
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

  program
    .command("validate")
    .description("check a config file or directory; exit 0 when valid, 78 (EX_CONFIG) with every error otherwise")
    .requiredOption("-c, --config <path>", "config file or directory (YAML or JSON)")
    .option("--json", "print the result as JSON on stdout")
    .action((options: { config: string; json?: boolean }) => {
      process.exitCode = validateCommand(options);
    });
  return program;
}

await buildProgram().parseAsync(process.argv);
