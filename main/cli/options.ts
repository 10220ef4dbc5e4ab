/**
 * Command-line options of every `lorasmith` command, parsed by node:util's parseArgs (strict: an unknown option,
 * a missing value or a value given to a flag is a usage error naming it), and typed readers of the values.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './command';

/** name -> 'string' (takes a value), 'flag' (a boolean switch) or 'list' (a value, repeatable). */
export type OptionKinds = Readonly<Record<string, 'string' | 'flag' | 'list'>>;

export interface ParsedOptions {
  readonly positionals: readonly string[];
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
}

type NodeOptions = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

export function parseOptions(argv: readonly string[], kinds: OptionKinds): ParsedOptions {
  const options: NodeOptions = {};
  for (const [name, kind] of Object.entries(kinds)) {
    options[name] = kind === 'flag' ? { type: 'boolean' } : { type: 'string', multiple: kind === 'list' };
  }
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    return { positionals, values: values as ParsedOptions['values'] };
  } catch (error) {
    throw new UsageError(usageMessage(error as Error & { code?: string }));
  }
}

/** node's parse errors in this CLI's words: the option, and what to do. */
function usageMessage(error: Error & { code?: string }): string {
  const option = /'(-{1,2}[^'\s]+)/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? error.message}; see --help`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(error.message)) return `${option} needs a value`;
      if (/ambiguous/.test(error.message)) return `${option} needs a value (one starting with '-' is written ${option}=-...)`;
      return `${option ?? 'an option'} takes no value; see --help`;
    default:
      return error.message;
  }
}

export function stringOption(parsed: ParsedOptions, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === 'string' ? value : undefined;
}

export function flagOption(parsed: ParsedOptions, name: string): boolean {
  return parsed.values[name] === true;
}

export function listOption(parsed: ParsedOptions, name: string): string[] {
  const value = parsed.values[name];
  return Array.isArray(value) ? value : [];
}

export function numberOption(parsed: ParsedOptions, name: string, kind: 'int' | 'float'): number | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || (kind === 'int' && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got '${raw}'`);
  }
  return value;
}

/**
 * The command's positional arguments, exactly one per name in `names` (['<adapter-dir>', '<model-dir>']), or a
 * usage error saying what the command needs and what was extra.
 */
export function positionals(parsed: ParsedOptions, command: string, names: readonly string[], usage: string): string[] {
  const given = parsed.positionals;
  if (given.length !== names.length || given.includes('')) {
    const needs = names.length === 1 ? `exactly one ${names[0]}` : names.join(' ');
    const extra = given.length > names.length ? ` (unexpected '${given[names.length]}')` : '';
    throw new UsageError(`${command} needs ${needs}${extra}\nUsage: ${usage}`);
  }
  return [...given];
}

/** The command's one positional argument (named `name` in the usage error). */
export function positional(parsed: ParsedOptions, command: string, name: string, usage: string): string {
  return positionals(parsed, command, [name], usage)[0] as string;
}

/** Runs the subcommand `argv[0]` names, or refuses naming the ones there are. */
export function runSubcommand(command: string, usage: string, argv: readonly string[], subcommands: Readonly<Record<string, (rest: readonly string[]) => number | Promise<number>>>): number | Promise<number> {
  const [sub, ...rest] = argv;
  const run = sub !== undefined && Object.hasOwn(subcommands, sub) ? subcommands[sub] : undefined;
  if (!run) {
    const names = Object.keys(subcommands);
    const list = `${names.slice(0, -1).join(', ')} or ${names.at(-1) as string}`;
    throw new UsageError(`${command} needs a subcommand: ${list}${sub ? ` (got '${sub}')` : ''}\nUsage: ${usage}`);
  }
  return run(rest);
}
