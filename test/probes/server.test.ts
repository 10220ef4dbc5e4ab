/**
 * Hostile input against the real server process (lorasmith serve on a temp data folder): bad request targets,
 * bad upgrades, bad %-escapes, WebSocket messages that are not commands, frames over the limit or not UTF-8.
 * After each: the process runs, its page and a fresh socket answer, and the library holds what it held before.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { probe } from '../support/probes/record';
import {
  call, closed, libraryState, nextReply, openSocket, rawRequest, startServer, stillAnswers, tempDir, type RunningServer,
} from '../support/probes/server';

let temp: ReturnType<typeof tempDir>;
let server: RunningServer;
let before: ReturnType<typeof libraryState>;

beforeAll(async () => {
  temp = tempDir('probe-server');
  server = await startServer(join(temp.dir, 'data'));
  before = libraryState(server.dataDir);
});

afterAll(async () => {
  const code = await server.stop();
  temp.remove();
  expect(code).toBe(0);
});

/** What every probe here checks last: still running and answering, and nothing written. */
async function holds(): Promise<void> {
  expect(await stillAnswers(server), server.output()).toBe(true);
  expect(libraryState(server.dataDir)).toEqual(before);
}

/** A WebSocket upgrade request with any target, over a raw socket; resolves with the status line's code. */
function rawUpgrade(target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(server.port, '127.0.0.1');
    let data = '';
    socket.on('connect', () => socket.write([
      `GET ${target} HTTP/1.1`, `Host: 127.0.0.1:${server.port}`, 'Connection: Upgrade', 'Upgrade: websocket',
      'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', '',
    ].join('\r\n')));
    socket.on('data', (c: Buffer) => {
      data += String(c);
      if (data.includes('\r\n')) socket.destroy();
    });
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    socket.on('error', reject);
  });
}

describe('the server never exits on input', () => {
  probe('target-not-a-url', async () => {
    const answer = await rawRequest(server.port, 'http://[zz/');
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('BAD_REQUEST');
    await holds();
  });

  probe('target-not-a-url-token', async () => {
    const answer = await rawRequest(server.port, `http://[zz/t/${server.token}/`);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatch(/BAD_REQUEST: the request target .* is not a path/);
    await holds();
  });

  probe('upgrade-not-a-url', async () => {
    expect(await rawUpgrade('http://[zz/')).toBe(400);
    expect(await rawUpgrade(`http://[zz/t/${server.token}/ws`)).toBe(400);
    expect(await rawUpgrade(`/t/${server.token}/%ZZ`)).toBe(400);
    await holds();
  });

  probe('path-bad-escape', async () => {
    const answer = await rawRequest(server.port, `/t/${server.token}/%ZZ`);
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('malformed %-escape');
    await holds();
  });

  probe('ws-null', async () => {
    const ws = await openSocket(server);
    try {
      ws.send('null');
      expect(await nextReply(ws)).toMatchObject({ id: null, ok: false, error: { code: 'INVALID_INPUT', message: expect.stringContaining('got null') } });
      expect((await call(ws, 'app.info')).ok).toBe(true); // the same socket still serves
    } finally {
      ws.close();
    }
    await holds();
  });

  probe('ws-not-an-object', async () => {
    const ws = await openSocket(server);
    try {
      const inputs: [string, string][] = [['42', 'number'], ['"x"', 'string'], ['[]', 'an array'], ['{"id": {}, "name": "app.info"}', 'id must be']];
      for (const [text, named] of inputs) {
        ws.send(text);
        expect(await nextReply(ws)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT', message: expect.stringContaining(named) } });
      }
      ws.send(Buffer.from([1, 2, 3]), { binary: true });
      expect(await nextReply(ws)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT', message: expect.stringContaining('binary') } });
      expect(await call(ws, 'no.such.command')).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
    } finally {
      ws.close();
    }
    await holds();
  });

  probe('ws-over-limit', async () => {
    const ws = await openSocket(server);
    const done = closed(ws);
    // A chat message of 17 MiB: valid, but over the 16 MiB a command may be.
    ws.send(JSON.stringify({ id: 1, name: 'chat.generate', args: { messages: [{ role: 'user', content: 'x'.repeat(17 * 1024 * 1024) }] } }));
    expect((await done).code).toBe(1009);
    await holds();
  });

  probe('ws-invalid-utf8', async () => {
    const ws = await openSocket(server);
    const done = closed(ws);
    // A text frame carrying 0xFF: the ws library sends it as given (skipUTF8Validation applies on receipt only).
    ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    expect((await done).code).toBe(1007);
    await holds();
  });

  probe('token-no-cookie', async () => {
    const page = await rawRequest(server.port, `/t/${server.token}/`);
    const asset = await rawRequest(server.port, `/t/${server.token}/assets/app.js`);
    const refused = await rawRequest(server.port, '/');
    for (const answer of [page, asset, refused]) expect(answer.headers.toLowerCase()).not.toContain('set-cookie');
    expect(page.status).toBe(200);
    expect(page.headers.toLowerCase()).toContain('referrer-policy: no-referrer');
    // Only the path carries the token: a cookie, were one sent, does not open anything.
    expect((await rawRequest(server.port, '/', { cookie: `lorasmith_token=${server.token}` })).status).toBe(403);
    await holds();
  });
});
