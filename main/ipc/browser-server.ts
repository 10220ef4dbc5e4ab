/**
 * Browser mode: the built renderer and the same command handlers over a WebSocket, on 127.0.0.1 only.
 * A random token in the printed URL guards everything: the page request must carry it (?token=), which sets a
 * SameSite=Strict cookie for the page's assets; the WebSocket must carry it too, come from a loopback Origin,
 * and name a loopback Host (so a DNS-rebinding page cannot reach it).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EventName, Events } from '../../preload/contract';
import { CONTENT_SECURITY_POLICY } from '../app/security';
import { dispatch } from './dispatch';
import type { Handlers } from './types';

export interface BrowserServerOptions {
  readonly handlers: () => Handlers;
  /** The built renderer (out/renderer). */
  readonly rendererDir: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly token?: string;
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
const COOKIE = 'lorasmith_token';
const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

function sameToken(given: string | null | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieToken(req: IncomingMessage): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === COOKIE && v) return decodeURIComponent(v);
  }
  return null;
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

export async function startBrowserServer(options: BrowserServerOptions): Promise<BrowserServer> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const root = normalize(options.rendererDir);
  const sockets = new Set<WebSocket>();
  let port = 0;

  const authorized = (req: IncomingMessage, url: URL) =>
    isLoopbackHost(req.headers.host, port) && (sameToken(url.searchParams.get('token'), token) || sameToken(cookieToken(req), token));

  async function serveFile(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (!authorized(req, url)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('Forbidden: open the address printed by `lorasmith serve` (it carries the token).\n');
      return;
    }
    const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).replace(/^\/+/, '');
    const file = normalize(join(root, rel));
    if (file !== root && !file.startsWith(root + sep)) return void res.writeHead(404).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
        'set-cookie': `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
      }).end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${url.pathname}\n`);
    }
  }

  const server = createServer((req, res) => void serveFile(req, res));
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/ws' || !authorized(req, url) || !isLoopbackOrigin(req.headers.origin, port)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('message', (data) => void onMessage(ws, String(data)));
    });
  });

  async function onMessage(ws: WebSocket, text: string): Promise<void> {
    let message: { id?: unknown; name?: unknown; args?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return void ws.send(JSON.stringify({ id: null, ok: false, error: { name: 'IpcError', code: 'INVALID_INPUT', message: 'messages must be JSON' } }));
    }
    const outcome = await dispatch(options.handlers(), message.name, message.args);
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ id: message.id ?? null, ...outcome }));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the browser-mode server has no address');
  port = address.port;

  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    emit(name, payload) {
      const text = JSON.stringify({ event: name, payload });
      for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(text);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of sockets) ws.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
