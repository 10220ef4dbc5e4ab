/**
 * Browser mode: the built renderer and the same command handlers over a WebSocket, on 127.0.0.1 only.
 *
 * The token is a path prefix: the printed address is http://127.0.0.1:<port>/t/<token>/, the page's assets
 * resolve relative to it (./assets/...) and its WebSocket is /t/<token>/ws. No cookie carries it: cookies ignore
 * ports, so a cookie for 127.0.0.1 would reach every other local service. Every request names a loopback Host
 * (so a DNS-rebinding page cannot reach it), the WebSocket must also come from a loopback Origin, and pages go
 * out with `referrer-policy: no-referrer`, so the address never leaves in a Referer header.
 *
 * Nothing that arrives can stop the server: each request and each socket has one guard around all its work, and
 * whatever goes wrong is answered with a status and a code (HTTP) or {ok: false, error} / a close code (WebSocket).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { EventName, Events } from '../../preload/contract';
import { CONTENT_SECURITY_POLICY } from '../app/security';
import { dispatch } from './dispatch';
import { toAppError } from './errors';
import type { Handlers } from './types';

export interface BrowserServerOptions {
  readonly handlers: () => Handlers;
  /** The built renderer (out/renderer). */
  readonly rendererDir: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly token?: string;
  /**
   * Serves /t/<token>/engine to other machines' apps (ipc/remote-engine), which reach it through an SSH tunnel:
   * any loopback Host port (the tunnel's local end), and never from a browser page (no Origin header).
   */
  readonly engineSocket?: (ws: WebSocket) => void;
  /** Told about failures that are the server's own (a handler crashing, a socket error), for the log. */
  readonly onError?: (where: string, error: unknown) => void;
}

export interface BrowserServer {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  emit<E extends EventName>(name: E, payload: Events[E]): void;
  close(): Promise<void>;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.json': 'application/json', '.woff2': 'font/woff2', '.ico': 'image/x-icon', '.wasm': 'application/wasm',
};
const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];
/** Commands are small; a longer message closes its socket with 1009 (the ws library's own check). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export type HttpErrorCode = 'BAD_REQUEST' | 'FORBIDDEN' | 'NOT_FOUND' | 'INTERNAL';

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Host header names this server on a loopback name (guards against DNS rebinding). */
export function isLoopbackHost(host: string | undefined, port: number): boolean {
  return host !== undefined && LOOPBACK_HOSTS.some((h) => host === `${h}:${port}`);
}

/** An Origin header, when present, must be this server on a loopback name. */
export function isLoopbackOrigin(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true; // not a browser page: the token alone decides
  return LOOPBACK_HOSTS.some((h) => origin === `http://${h}:${port}`);
}

/** A request target split into its token and the decoded path under it; an error code where it is no such thing. */
export type Target =
  | { readonly ok: true; readonly token: string; readonly path: string; readonly slash: boolean }
  | { readonly ok: false; readonly code: HttpErrorCode; readonly message: string };

/**
 * Reads `/t/<token>/<path>` without trusting anything in it: the target must be origin-form (start with '/'),
 * its %-escapes must decode, and the decoded path may not climb ('..') or hide a NUL.
 */
export function parseTarget(raw: string | undefined): Target {
  const shown = JSON.stringify((raw ?? '').slice(0, 200));
  if (raw === undefined || !raw.startsWith('/')) {
    return { ok: false, code: 'BAD_REQUEST', message: `the request target ${shown} is not a path; open the address printed by \`lorasmith serve\`` };
  }
  const [pathPart] = raw.split(/[?#]/, 1) as [string];
  const match = /^\/t\/([^/]+)(\/.*)?$/.exec(pathPart);
  if (!match) return { ok: false, code: 'FORBIDDEN', message: 'open the address printed by `lorasmith serve` (it carries the token)' };
  let path: string;
  try {
    path = decodeURIComponent(match[2] ?? '');
  } catch {
    return { ok: false, code: 'BAD_REQUEST', message: `the path ${shown} has a malformed %-escape` };
  }
  if (path.includes('\0') || path.split('/').includes('..')) {
    return { ok: false, code: 'NOT_FOUND', message: 'no such file' };
  }
  return { ok: true, token: match[1] as string, path: path.replace(/^\/+/, ''), slash: match[2] !== undefined };
}

const STATUS: Readonly<Record<HttpErrorCode, number>> = { BAD_REQUEST: 400, FORBIDDEN: 403, NOT_FOUND: 404, INTERNAL: 500 };

function answerError(res: ServerResponse, code: HttpErrorCode, message: string): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(STATUS[code], { 'content-type': 'text/plain; charset=utf-8', 'x-error-code': code }).end(`${code}: ${message}\n`);
}

function refuseUpgrade(socket: Duplex, code: HttpErrorCode, message: string): void {
  const reason = { BAD_REQUEST: 'Bad Request', FORBIDDEN: 'Forbidden', NOT_FOUND: 'Not Found', INTERNAL: 'Internal Server Error' }[code];
  socket.end(`HTTP/1.1 ${STATUS[code]} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nX-Error-Code: ${code}\r\n\r\n${code}: ${message}\n`);
}

/** What a WebSocket message must be: a JSON object with a numeric or string id, a command name and its args. */
export type ParsedMessage =
  | { readonly ok: true; readonly id: number | string | null; readonly name: unknown; readonly args: unknown }
  | { readonly ok: false; readonly id: number | string | null; readonly message: string };

export function parseMessage(data: RawData, isBinary: boolean): ParsedMessage {
  if (isBinary) return { ok: false, id: null, message: 'messages must be JSON text, not binary frames' };
  let value: unknown;
  try {
    value = JSON.parse(String(data));
  } catch {
    return { ok: false, id: null, message: 'messages must be JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    return { ok: false, id: null, message: `a message must be a JSON object {id, name, args}, got ${kind}` };
  }
  const m = value as { id?: unknown; name?: unknown; args?: unknown };
  const id = typeof m.id === 'number' || typeof m.id === 'string' ? m.id : null;
  if (m.id !== undefined && id === null) return { ok: false, id: null, message: 'a message id must be a number or a string' };
  return { ok: true, id, name: m.name, args: m.args };
}

export async function startBrowserServer(options: BrowserServerOptions): Promise<BrowserServer> {
  // Hex, not base64url: a token starting with '-' would read as an option in `lorasmith train --token T`.
  const token = options.token ?? randomBytes(24).toString('hex');
  const root = normalize(options.rendererDir);
  const sockets = new Set<WebSocket>();
  const report = (where: string, error: unknown) => {
    try {
      options.onError?.(where, error);
    } catch {
      // a failing logger must not take the server down either
    }
  };
  let port = 0;

  /** The token and the loopback Host, or why not. */
  function admit(req: IncomingMessage): Target {
    if (!isLoopbackHost(req.headers.host, port) && !isEngineUpgrade(req)) {
      return { ok: false, code: 'FORBIDDEN', message: 'this server answers only requests for 127.0.0.1 or localhost' };
    }
    const target = parseTarget(req.url);
    if (target.ok && !sameToken(target.token, token)) {
      return { ok: false, code: 'FORBIDDEN', message: 'open the address printed by `lorasmith serve` (it carries the token)' };
    }
    return target;
  }

  async function serveFile(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = admit(req);
    if (!target.ok) return answerError(res, target.code, target.message);
    if (req.method !== 'GET' && req.method !== 'HEAD') return answerError(res, 'BAD_REQUEST', `method ${req.method ?? ''} is not served; only GET`);
    // /t/<token> without its slash: the page's relative asset URLs need the folder form.
    if (!target.slash) return void res.writeHead(308, { location: `/t/${token}/`, 'referrer-policy': 'no-referrer' }).end();
    const file = normalize(join(root, target.path === '' ? 'index.html' : target.path));
    if (file !== root && !file.startsWith(root + sep)) return answerError(res, 'NOT_FOUND', 'no such file');
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      return answerError(res, 'NOT_FOUND', `no such file: /${target.path}`);
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    }).end(req.method === 'HEAD' ? undefined : body);
  }

  const server = createServer((req, res) => {
    serveFile(req, res).catch((error: unknown) => {
      report('http request', error);
      answerError(res, 'INTERNAL', toAppError(error).message);
    });
  });
  // A malformed request line or header: answer 400 and drop the connection (never an exception).
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nX-Error-Code: BAD_REQUEST\r\n\r\n');
    else socket.destroy();
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  wss.on('error', (error) => report('websocket server', error));
  const engines = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  engines.on('error', (error) => report('engine websocket server', error));
  const engineSockets = new Set<WebSocket>();

  function send(ws: WebSocket, value: unknown): void {
    if (ws.readyState !== ws.OPEN) return;
    try {
      ws.send(JSON.stringify(value));
    } catch (error) {
      report('websocket send', error);
    }
  }

  async function onMessage(ws: WebSocket, data: RawData, isBinary: boolean): Promise<void> {
    const message = parseMessage(data, isBinary);
    if (!message.ok) {
      return send(ws, { id: message.id, ok: false, error: { name: 'IpcError', code: 'INVALID_INPUT', message: message.message } });
    }
    send(ws, { id: message.id, ...(await dispatch(options.handlers(), message.name, message.args)) });
  }

  function accept(ws: WebSocket): void {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    // A frame over MAX_MESSAGE_BYTES (1009), invalid UTF-8 (1007) or a protocol error: the ws library closes the
    // socket with that code and reports it here; without a listener it would be an uncaught exception.
    ws.on('error', (error) => report('websocket', error));
    ws.on('message', (data, isBinary) => {
      onMessage(ws, data, isBinary).catch((error: unknown) => {
        report('websocket message', error);
        send(ws, { id: null, ok: false, error: toAppError(error) });
      });
    });
  }

  /** A program's (no Origin) upgrade to ./engine through a port forward: the Host names the tunnel's local port. */
  function isEngineUpgrade(req: IncomingMessage): boolean {
    const target = parseTarget(req.url);
    return options.engineSocket !== undefined && target.ok && target.path === 'engine' && req.headers.origin === undefined &&
      req.headers.upgrade?.toLowerCase() === 'websocket' && /^(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}$/.test(req.headers.host ?? '');
  }

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', (error) => report('upgrade socket', error));
    try {
      const target = admit(req);
      if (!target.ok) return refuseUpgrade(socket, target.code, target.message);
      if (target.path === 'engine' && options.engineSocket) {
        if (req.headers.origin !== undefined) return refuseUpgrade(socket, 'FORBIDDEN', 'the engine socket accepts programs only, not pages');
        const engineSocket = options.engineSocket;
        return engines.handleUpgrade(req, socket, head, (ws) => {
          engineSockets.add(ws);
          ws.on('close', () => engineSockets.delete(ws));
          engineSocket(ws);
        });
      }
      if (target.path !== 'ws') return refuseUpgrade(socket, 'NOT_FOUND', 'the WebSocket is at ./ws');
      if (!isLoopbackOrigin(req.headers.origin, port)) return refuseUpgrade(socket, 'FORBIDDEN', 'the WebSocket accepts pages of this server only');
      wss.handleUpgrade(req, socket, head, accept);
    } catch (error) {
      report('upgrade', error);
      refuseUpgrade(socket, 'INTERNAL', toAppError(error).message);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => report('http server', error));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the browser-mode server has no address');
  port = address.port;

  return {
    url: `http://127.0.0.1:${port}/t/${token}/`,
    port,
    token,
    emit(name, payload) {
      for (const ws of sockets) send(ws, { event: name, payload });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of [...sockets, ...engineSockets]) ws.terminate();
        wss.close();
        engines.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
