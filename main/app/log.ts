/** The app's log file (logs/main.log in the data directory), appended line by line with a timestamp. */
import { appendFileSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

const MAX_BYTES = 5 * 1024 * 1024;

export interface Logger {
  readonly file: string;
  info(message: string): void;
  error(message: string, error?: unknown): void;
}

export function fileLogger(dir: string): Logger {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'main.log');
  try {
    if (statSync(file).size > MAX_BYTES) renameSync(file, join(dir, 'main.1.log')); // keep one previous file
  } catch {
    // no log yet
  }
  const write = (level: string, message: string) => {
    try {
      appendFileSync(file, `${new Date().toISOString()} ${level} ${message}\n`);
    } catch {
      // logging must never take the app down
    }
  };
  return {
    file,
    info: (message) => write('INFO', message),
    error: (message, error) => write('ERROR', error instanceof Error ? `${message}: ${error.stack ?? error.message}` : `${message}${error === undefined ? '' : `: ${String(error)}`}`),
  };
}
