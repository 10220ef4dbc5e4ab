/** `lorasmith`: the same engine as the app, headless. */
import { COMMANDS } from './commands';
import { UsageError, type CliIo } from './command';
import { packageVersion as version } from './version';

export function helpText(): string {
  const width = Math.max(8, ...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    `lorasmith ${version()}: fine-tune language models locally with LoRA`,
    '',
    'Usage: lorasmith <command> [options]',
    '',
    'Commands:',
    ...(lines.length > 0 ? lines : ['  (none yet)']),
    '',
    "Run 'lorasmith <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: readonly string[], io?: Partial<CliIo>): Promise<number> {
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onInterrupt);
  const cliIo: CliIo = {
    out: io?.out ?? ((text) => process.stdout.write(text + '\n')),
    err: io?.err ?? ((text) => process.stderr.write(text + '\n')),
    signal: io?.signal ?? controller.signal,
  };
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      cliIo.out(helpText());
      return name === undefined ? 2 : 0;
    }
    if (name === '--version' || name === '-v') {
      cliIo.out(version());
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      cliIo.err(`lorasmith: unknown command '${name}'. Run 'lorasmith --help' for the list.`);
      return 2;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      cliIo.out(`${command.summary}\n\nUsage: ${command.usage}`);
      return 0;
    }
    return await command.run(rest, cliIo);
  } catch (error) {
    if (error instanceof UsageError) {
      cliIo.err(`lorasmith: ${error.message}`);
      return 2;
    }
    const e = error as { code?: string; message?: string };
    cliIo.err(`lorasmith: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(error)}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
}
