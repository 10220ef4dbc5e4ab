import type { CliCommand } from './command';

/**
 * Every `lorasmith` command, in the order `--help` lists them. Each command lives in a file of its own
 * beside this one and is added here.
 */
export const COMMANDS: readonly CliCommand[] = [];
