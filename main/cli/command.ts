/** One CLI command: its name, a one-line summary for `--help`, its usage, and what it does. */
export interface CliCommand {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** Returns the process exit code. Prints to the given streams, never to process.stdout directly. */
  run(argv: readonly string[], io: CliIo): Promise<number>;
}

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Aborted on Ctrl-C, so long work (training, generation) stops cleanly between steps. */
  readonly signal: AbortSignal;
}

/** A user error: printed as one line without a stack, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
