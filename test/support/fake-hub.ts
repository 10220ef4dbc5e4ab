/**
 * A fake Hugging Face hub on 127.0.0.1 (node:http) serving one model folder as one repo at one commit: the
 * revision's file list (GET /api/models/<repo>/revision/main?blobs=true, with sizes and the weights' sha256) and
 * each file from /<repo>/resolve/<commit>/<file>, with HTTP Range requests answered 206. Nothing reaches the
 * internet. Tests can corrupt the weights or hold them half sent.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface Served {
  readonly url: string;
  readonly range: string | undefined;
  readonly status: number;
}

export interface FakeHubOptions {
  /** The model folder served. */
  readonly fixture: string;
  /** The files of it the hub lists and serves. */
  readonly files: readonly string[];
  /** Listed too but never served (a client must not ask for them): 404. */
  readonly extraFiles?: readonly string[];
  readonly repo: string;
  readonly commit: string;
}

export interface FakeHub {
  /** The hub's base URL (what HF_ENDPOINT or the handlers' hubUrl take). */
  readonly url: string;
  /** Every request, in order. */
  readonly served: Served[];
  /** While true, model.safetensors arrives with its last byte flipped. */
  corrupt: boolean;
  /**
   * From now on model.safetensors, asked for from its first byte, is sent in two halves: `halfSent` resolves once
   * the first is written, and the second waits for `release` (which also ends the hold for later requests).
   */
  holdWeights(): { halfSent: Promise<void>; release: () => void };
  close(): Promise<void>;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const { fixture, files, repo, commit } = options;
  const extra = options.extraFiles ?? [];
  const served: Served[] = [];
  let hold: { release: Promise<void>; sentHalf: () => void } | null = null;
  const state = { corrupt: false };

  function sendFile(req: IncomingMessage, res: ServerResponse, name: string): void {
    const bytes = readFileSync(join(fixture, name));
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    const status = match ? 206 : 200;
    served.push({ url: req.url ?? '', range: req.headers.range, status });
    const body = Buffer.from(bytes.subarray(start));
    if (state.corrupt && name === 'model.safetensors') body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 0xff;
    res.writeHead(status, {
      'content-length': String(body.length),
      ...(match ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    res.on('error', () => undefined); // a client killed mid-file
    const current = hold;
    if (name === 'model.safetensors' && current && !match) {
      const half = Math.floor(body.length / 2);
      res.write(body.subarray(0, half), () => current.sentHalf());
      void current.release.then(() => res.end(body.subarray(half)));
      return;
    }
    res.end(body);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === `/api/models/${repo}/revision/main`) {
      served.push({ url: req.url ?? '', range: undefined, status: 200 });
      const siblings = [...files, ...extra].map((name) => ({
        rfilename: name, size: existsSync(join(fixture, name)) ? statSync(join(fixture, name)).size : 10,
        ...(name === 'model.safetensors' ? { lfs: { sha256: sha256(readFileSync(join(fixture, name))), size: statSync(join(fixture, name)).size } } : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: repo, sha: commit, siblings }));
      return;
    }
    const prefix = `/${repo}/resolve/${commit}/`;
    const file = url.pathname.startsWith(prefix) ? decodeURIComponent(url.pathname.slice(prefix.length)) : null;
    if (file && files.includes(file)) return sendFile(req, res, file);
    served.push({ url: req.url ?? '', range: undefined, status: 404 });
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    get corrupt() {
      return state.corrupt;
    },
    set corrupt(value: boolean) {
      state.corrupt = value;
    },
    holdWeights() {
      let sentHalf!: () => void;
      const halfSent = new Promise<void>((resolve) => (sentHalf = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      hold = { release: released, sentHalf };
      return {
        halfSent,
        release: () => {
          hold = null;
          release();
        },
      };
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
