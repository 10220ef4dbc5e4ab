import type { CliCommand } from './command';
import { makeAdapterCommand } from './adapter';
import { defaultLoader, makeMergeCommand } from './merge';
import { makeGgufCommand } from './gguf';
import { makeInspectCommand } from './inspect';
import { makeGenerateCommand } from './generate';
import { trainCommand } from './train';
import { exportRunCommand } from './export-run';
import { importRunCommand } from './import-run';
import { evalCommand } from './eval';
import { serveCommand } from './serve';

/**
 * Every `lorasmith` command, in the order `--help` lists them. Each command lives in a file of its own
 * beside this one and is added here.
 */
export const COMMANDS: readonly CliCommand[] = [
  makeInspectCommand(),
  makeGenerateCommand(),
  trainCommand,
  exportRunCommand,
  importRunCommand,
  evalCommand,
  makeMergeCommand(),
  makeAdapterCommand(),
  makeGgufCommand(defaultLoader),
  serveCommand,
];
