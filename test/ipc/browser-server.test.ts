/**
 * Browser mode's guard: pages and the WebSocket need the token (a path prefix, never a cookie); a wrong token, a
 * non-loopback Origin and a non-loopback Host (DNS rebinding) are refused; with the token, the same handlers answer
 * over the socket. (test/probes/ throws hostile input at the real `lorasmith serve`.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { startBrowserServer, type BrowserServer } from '../../main/ipc/browser-server';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

let main: HandlersUnderTest;
let server: BrowserServer;

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function connect(token: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t/${token}/ws`, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function call(ws: WebSocket, id: number, name: string, args: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const message = JSON.parse(String(data)) as Record<string, unknown>;
      if (message.id === id) {
        ws.off('message', onMessage);
        resolve(message);
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, name, args }));
  });
}

beforeAll(async () => {
  let emit: BrowserServer['emit'] = () => undefined;
  main = handlersUnderTest({ context: { version: '1.2.3' }, emit: (n, p) => emit(n, p) });
  const { dir } = main;
  const renderer = join(dir, 'renderer');
  mkdirSync(join(renderer, 'assets'), { recursive: true });
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>Lorasmith</title>');
  writeFileSync(join(renderer, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'outside');
  server = await startBrowserServer({ handlers: () => main.app.handlers, rendererDir: renderer, port: 0 });
  emit = server.emit;
});

afterAll(async () => {
  await server.close();
  await main.close();
});

describe('browser-mode server', () => {
  it('listens on 127.0.0.1 and prints a URL with a long random token in its path', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/t\/[0-9a-f]{48}\/$/);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/t/${server.token}/`);
  });

  it('refuses pages without the token or with a wrong one', async () => {
    expect((await get('/')).status).toBe(403);
    expect((await get('/?token=' + server.token)).status).toBe(403); // the token is a path, not a query
    expect((await get('/t/wrong/')).status).toBe(403);
    expect((await get(`/t/${server.token.slice(0, -1)}x/`)).status).toBe(403);
    expect((await get('/assets/app.js')).status).toBe(403);
  });

  it('serves the page and its assets under the token, with a strict CSP, no referrer and no cookie', async () => {
    const page = await get(`/t/${server.token}/`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>Lorasmith</title>');
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['set-cookie']).toBeUndefined();
    expect((await get(`/t/${server.token}/assets/app.js`)).status).toBe(200);
    expect((await get(`/t/${server.token}`)).headers.location).toBe(`/t/${server.token}/`);
    expect((await get(`/t/${server.token}/../secret.txt`)).body).not.toContain('outside');
    expect((await get(`/t/${server.token}/%2e%2e/secret.txt`)).status).toBe(404);
  });

  it('refuses a non-loopback Host header (DNS rebinding) even with the token', async () => {
    expect((await get(`/t/${server.token}/`, { host: `evil.example:${server.port}` })).status).toBe(403);
  });

  it('refuses WebSockets without the token, with a wrong one, or from a non-loopback Origin', async () => {
    await expect(connect('')).rejects.toThrow('403');
    await expect(connect('nope')).rejects.toThrow('403');
    await expect(connect(server.token, { origin: 'http://evil.example' })).rejects.toThrow('403');
    await expect(connect(server.token, { origin: `http://127.0.0.1.evil.example:${server.port}` })).rejects.toThrow('403');
  });

  it('answers commands with the token from a loopback Origin, validating input and pushing events', async () => {
    const ws = await connect(server.token, { origin: `http://127.0.0.1:${server.port}` });
    try {
      expect(await call(ws, 1, 'app.info', {})).toMatchObject({ id: 1, ok: true, result: { mode: 'browser', version: '1.2.3' } });
      expect(await call(ws, 2, 'models.import', { path: 'relative/path', mode: 'copy' })).toMatchObject({ ok: false, error: { code: 'PATH_INVALID' } });
      expect(await call(ws, 3, 'runs.metrics', {})).toMatchObject({ ok: false, error: { name: 'IpcError', code: 'INVALID_INPUT' } });
      const pushed = new Promise<unknown>((resolve) => ws.once('message', (d: Buffer) => resolve(JSON.parse(String(d)))));
      server.emit('host.status', { state: 'ready' });
      expect(await pushed).toEqual({ event: 'host.status', payload: { state: 'ready' } });
    } finally {
      ws.close();
    }
  });
});
