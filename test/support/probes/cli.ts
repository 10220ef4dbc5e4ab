/** The real `lorasmith` command line in a process of its own, as a user runs it. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CRASH_PRELOAD, REPO } from './server';

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
  readonly err: string;
}

export interface CliOptions {
  readonly cwd?: string;
  readonly timeoutMs?: number;
  /** Kill the command (SIGKILL) at its first rename touching a path that contains this (crash-on-rename.mjs). */
  readonly crashOnRename?: string;
}

export function spawnCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const preload = options.crashOnRename ? ['--import', CRASH_PRELOAD] : [];
    const child = spawn(process.execPath, [...preload, join(REPO, 'bin/lorasmith.js'), ...args], {
      cwd: options.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(options.crashOnRename ? { LORASMITH_CRASH_ON_RENAME: options.crashOnRename } : {}) },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    child.stderr.on('data', (c: Buffer) => (err += String(c)));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}
