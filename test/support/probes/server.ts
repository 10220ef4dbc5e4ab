/**
 * The probe harness: starts the real server (serve-entry.ts, a process of its own) on a temp data folder, sends
 * whatever a probe wants over raw HTTP or the WebSocket, and checks afterwards that the process still runs and
 * answers, and what the data folder holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { WebSocket } from 'ws';

export const REPO = join(import.meta.dirname, '../../..');

/** A temp folder for one probe suite, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `lorasmith-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunningServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly token: string;
  readonly url: string;
  readonly dataDir: string;
  /** Everything it printed so far. */
  output(): string;
  /** True while the process runs. */
  alive(): boolean;
  /** Ctrl-C, then wait for the exit code. */
  stop(): Promise<number | null>;
  /** Resolves when the process has ended, however. */
  readonly exited: Promise<number | null>;
}

export interface StartOptions {
  /** Where starter/ and samples/ are; an empty folder (no starter) where absent. */
  readonly resourcesDir?: string;
  /** Extra variables for the server's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Kill the server (SIGKILL) at its first rename whose "source\ndestination" contains this (crash-on-rename.mjs). */
  readonly crashOnRename?: string;
  /** With crashOnRename: kill just after that rename instead of before it. */
  readonly crashAfterRename?: boolean;
}

export const CRASH_PRELOAD = join(REPO, 'test/support/probes/crash-on-rename.mjs');

/** A renderer folder with an index page and one asset: what the server serves, not what is tested. */
function stubRenderer(parent: string): string {
  const dir = join(parent, 'renderer');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Lorasmith</title><script type="module" src="./assets/app.js"></script>');
  writeFileSync(join(dir, 'assets', 'app.js'), 'export {};\n');
  return dir;
}

/** Starts the server; resolves once it printed its address, rejects with its output if it exits first. */
export function startServer(dataDir: string, options: StartOptions = {}): Promise<RunningServer> {
  const scratch = mkdtempSync(join(tmpdir(), 'lorasmith-probe-serve-'));
  const rendererDir = stubRenderer(scratch);
  const resourcesDir = options.resourcesDir ?? join(scratch, 'no-resources');
  mkdirSync(resourcesDir, { recursive: true });
  const preload = options.crashOnRename ? ['--import', CRASH_PRELOAD] : [];
  const child = spawn(process.execPath, ['--import', join(REPO, 'bin/register-ts.js'), ...preload, join(REPO, 'test/support/probes/serve-entry.ts'), dataDir, rendererDir, resourcesDir], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env, ...options.env,
      ...(options.crashOnRename ? { LORASMITH_CRASH_ON_RENAME: options.crashOnRename, LORASMITH_CRASH_AFTER_RENAME: options.crashAfterRename ? '1' : '0' } : {}),
    },
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += String(c)));
  child.stderr.on('data', (c: Buffer) => (output += String(c)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    rmSync(scratch, { recursive: true, force: true });
    resolve(code);
  }));
  return new Promise<RunningServer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server printed no address in 180 s:\n${output}`)), 180_000);
    const poll = setInterval(() => {
      const match = /Open (http:\/\/127\.0\.0\.1:(\d+)\/t\/([A-Za-z0-9_-]+)\/)/.exec(output);
      if (!match) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolve({
        child, url: match[1] as string, port: Number(match[2]), token: match[3] as string, dataDir,
        output: () => output,
        exited,
        alive: () => child.exitCode === null && child.signalCode === null,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
          return exited;
        },
      });
    }, 20);
    void exited.then((code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new ServerExited(code, output));
    });
  });
}

export class ServerExited extends Error {
  constructor(readonly code: number | null, readonly output: string) {
    super(`the server exited with ${code}:\n${output}`);
  }
}

export interface RawResponse {
  readonly status: number;
  readonly headers: string;
  readonly body: string;
}

/**
 * Sends a request with any request target and headers over a plain TCP socket (no client library in between
 * to refuse or fix what a hostile client would send), and reads the whole answer.
 */
export function rawRequest(port: number, target: string, headers: Record<string, string> = {}, extra = ''): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, '127.0.0.1');
    let data = '';
    const all = { host: `127.0.0.1:${port}`, connection: 'close', ...headers };
    socket.on('connect', () => {
      socket.write(`GET ${target} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${extra}`);
    });
    socket.on('data', (c: Buffer) => (data += String(c)));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, headers: head, body: rest.join('\r\n\r\n') });
    });
    socket.setTimeout(15_000, () => socket.destroy(new Error(`no answer to ${target} in 15 s`)));
  });
}

export function openSocket(server: Pick<RunningServer, 'port' | 'token'>, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t/${server.token}/ws`, { headers, maxPayload: 1 << 30 });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

export interface Reply {
  readonly id: unknown;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: { readonly name: string; readonly code: string; readonly message: string };
}

/** The next reply (not an event) on the socket. */
export function nextReply(ws: WebSocket): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer) => {
      const message = JSON.parse(String(data)) as Reply & { event?: unknown };
      if (message.event !== undefined) return;
      ws.off('message', onMessage);
      resolve(message);
    };
    ws.on('message', onMessage);
    ws.once('close', (code, reason) => reject(new Error(`closed with ${code} ${String(reason)}`)));
  });
}

let nextId = 1;

/** Sends one command and waits for its reply. */
export async function call(ws: WebSocket, name: string, args: unknown = {}): Promise<Reply> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer) => {
      const message = JSON.parse(String(data)) as Reply;
      if (message.id !== id) return;
      ws.off('message', onMessage);
      resolve(message);
    };
    ws.on('message', onMessage);
    ws.once('close', (code, reason) => reject(new Error(`closed with ${code} ${String(reason)}`)));
    ws.send(JSON.stringify({ id, name, args }));
  });
}

/** Resolves with the close code (and reason) once the server closes the socket. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
}

/** The process runs, its page answers 200 and a fresh socket answers a command. */
export async function stillAnswers(server: RunningServer): Promise<boolean> {
  if (!server.alive()) return false;
  const page = await rawRequest(server.port, `/t/${server.token}/`);
  if (page.status !== 200) return false;
  const ws = await openSocket(server);
  try {
    return (await call(ws, 'settings.get')).ok;
  } finally {
    ws.close();
  }
}

/** Files under a folder (relative path and size), without the database's own files, sorted. */
export function filesUnder(root: string, skip: (rel: string) => boolean = (rel) => /^library\.sqlite/.test(rel)): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const rel = relative(root, path).split('\\').join('/');
      if (skip(rel)) continue;
      const stat = statSync(path, { throwIfNoEntry: false });
      if (!stat) continue;
      if (stat.isDirectory()) walk(path);
      else out.push(`${rel} ${stat.size}`);
    }
  };
  walk(root);
  return out.sort();
}

/** Row counts of the library's tables, read through a second, read-only connection. */
export function rowCounts(dataDir: string): Record<string, number> {
  const db = new Database(join(dataDir, 'library.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    return Object.fromEntries(tables.map((t) => [t, (db.prepare(`SELECT COUNT(*) AS n FROM "${t}"`).get() as { n: number }).n]));
  } finally {
    db.close();
  }
}

/** Files and rows of a data folder: equal before and after a refused input means nothing was written or left. */
export function libraryState(dataDir: string): { files: string[]; rows: Record<string, number> } {
  return { files: filesUnder(dataDir, (rel) => /^library\.(sqlite|lock)/.test(rel)), rows: rowCounts(dataDir) };
}

/** The next event `name` on the socket whose payload satisfies `where`. */
export function nextEvent(ws: WebSocket, name: string, where: (payload: unknown) => boolean = () => true): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer) => {
      const message = JSON.parse(String(data)) as { event?: unknown; payload?: unknown };
      if (message.event !== name || !where(message.payload)) return;
      ws.off('message', onMessage);
      resolve(message.payload);
    };
    ws.on('message', onMessage);
    ws.once('close', (code, reason) => reject(new Error(`closed with ${code} ${String(reason)} before '${name}'`)));
  });
}
