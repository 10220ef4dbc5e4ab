/**
 * Downloads a model folder from the Hugging Face hub: the revision's file list
 * (GET <hub>/api/models/<repo>/revision/<rev>?blobs=true), then each file a model needs from
 * <hub>/<repo>/resolve/<commit>/<file>. Each file streams into <name>.part and is renamed when complete, so
 * an interrupted download resumes with an HTTP Range request from the bytes it has. The hub's base URL is a
 * parameter: tests serve a fake hub on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const HUB_URL = 'https://huggingface.co';

export type HubErrorCode = 'HUB_NOT_FOUND' | 'HUB_HTTP' | 'HUB_UNREACHABLE' | 'HUB_NO_MODEL' | 'HUB_CHECKSUM' | 'CANCELLED';

export class HubError extends Error {
  override readonly name = 'HubError';
  constructor(
    readonly code: HubErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What a model folder needs: config, weights (safetensors only), tokenizer and generation settings. */
const NEEDED = new Set([
  'config.json', 'generation_config.json', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json',
  'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'chat_template.json',
  'chat_template.jinja',
]);

/** Top-level files only (no folders: onnx/, original/ hold other formats), and only what loading a model reads. */
export function isNeededFile(name: string): boolean {
  if (name.includes('/') || name.includes('\\') || name.startsWith('.')) return false;
  return NEEDED.has(name) || name.endsWith('.safetensors');
}

export interface HubFile {
  readonly name: string;
  /** Bytes, where the hub listed them. */
  readonly size: number | null;
  /** The LFS object's sha256 (weights), checked before the file is kept. */
  readonly sha256: string | null;
}

export interface HubListing {
  readonly repoId: string;
  /** The commit sha the hub resolved the revision to (the revision itself where it gave none). */
  readonly commit: string;
  readonly files: readonly HubFile[];
}

interface Sibling {
  readonly rfilename?: unknown;
  readonly size?: unknown;
  readonly lfs?: { readonly size?: unknown; readonly sha256?: unknown };
}

const encodePath = (repoId: string) => repoId.split('/').map(encodeURIComponent).join('/');

/**
 * A request to the hub that could not be made at all (offline, no DNS, refused, a firewall), said in words: the
 * address, the network's own reason (Node's fetch says only "fetch failed" and puts it in `cause`), and the two fixes.
 */
function unreachable(hubUrl: string, error: unknown): HubError {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const reason = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : String(cause);
  return new HubError('HUB_UNREACHABLE', `cannot reach the Hugging Face hub at ${hubUrl} (${reason}): check the network connection, ` +
    'or, where the hub is blocked, set HF_ENDPOINT to a mirror (for example HF_ENDPOINT=https://hf-mirror.com) and start Lorasmith again');
}

/** fetch(), with a request that never reached the hub told apart from a cancel. */
async function fetchHub(hubUrl: string, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (init.signal?.aborted) throw new HubError('CANCELLED', `the request to ${url} was cancelled`);
    throw unreachable(hubUrl, error);
  }
}

export async function listHubModel(hubUrl: string, repoId: string, revision: string, signal?: AbortSignal): Promise<HubListing> {
  const url = `${hubUrl}/api/models/${encodePath(repoId)}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const response = await fetchHub(hubUrl, url, signal ? { signal } : {});
  if (response.status === 404 || response.status === 401) {
    throw new HubError('HUB_NOT_FOUND', `the hub has no model '${repoId}' at revision '${revision}' (HTTP ${response.status}); check the repo id (owner/name) and revision`);
  }
  if (!response.ok) throw new HubError('HUB_HTTP', `the hub answered HTTP ${response.status} for '${repoId}'; try again later`);
  const body = (await response.json()) as { sha?: unknown; siblings?: unknown };
  const siblings = Array.isArray(body.siblings) ? (body.siblings as Sibling[]) : [];
  const files = siblings
    .filter((s): s is Sibling & { rfilename: string } => typeof s.rfilename === 'string' && isNeededFile(s.rfilename))
    .map((s) => {
      const size = typeof s.size === 'number' ? s.size : typeof s.lfs?.size === 'number' ? s.lfs.size : null;
      const sha256 = typeof s.lfs?.sha256 === 'string' && /^[0-9a-f]{64}$/.test(s.lfs.sha256) ? s.lfs.sha256 : null;
      return { name: s.rfilename, size, sha256 };
    });
  if (!files.some((f) => f.name === 'config.json') || !files.some((f) => f.name.endsWith('.safetensors'))) {
    throw new HubError('HUB_NO_MODEL', `'${repoId}' has no config.json with .safetensors weights at its top level; Lorasmith loads safetensors models only`);
  }
  return { repoId, commit: typeof body.sha === 'string' && /^[0-9a-f]{40}$/.test(body.sha) ? body.sha : revision, files };
}

export interface DownloadProgress {
  readonly file: string;
  /** Bytes on disk for the whole download (earlier files, and what a resumed file already had). */
  readonly receivedBytes: number;
  readonly totalBytes: number;
}

/**
 * Fetches every listed file into `dir` (resuming .part files), reporting progress. Files already complete
 * are kept. Rejects with CANCELLED when the signal aborts; the .part files stay for the next attempt.
 */
export async function downloadHubModel(
  hubUrl: string,
  listing: HubListing,
  dir: string,
  signal: AbortSignal,
  onProgress: (p: DownloadProgress) => void,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const sizeOnDisk = (f: HubFile) => {
    const done = join(dir, f.name);
    if (existsSync(done)) return statSync(done).size;
    const part = `${done}.part`;
    return existsSync(part) ? statSync(part).size : 0;
  };
  let earlier = 0;
  let totalBytes = listing.files.reduce((sum, f) => sum + (f.size ?? 0), 0);
  for (const file of listing.files) {
    const url = `${hubUrl}/${encodePath(listing.repoId)}/resolve/${encodeURIComponent(listing.commit)}/${encodeURIComponent(file.name)}`;
    const report = (bytesOfFile: number, size: number | null) => {
      if (file.size === null && size !== null) totalBytes += size; // the hub did not list it: count it when known
      onProgress({ file: file.name, receivedBytes: earlier + bytesOfFile, totalBytes });
    };
    const bytes = existsSync(join(dir, file.name)) ? sizeOnDisk(file) : await fetchFile(hubUrl, url, join(dir, file.name), file.sha256, signal, report);
    earlier += bytes;
    onProgress({ file: file.name, receivedBytes: earlier, totalBytes: Math.max(totalBytes, earlier) });
  }
}

function cancelled(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** One file into `<target>.part` from where it stopped (Range), renamed to `target` when complete. Returns its size. */
async function fetchFile(
  hubUrl: string,
  url: string,
  target: string,
  sha256: string | null,
  signal: AbortSignal,
  report: (bytesOfFile: number, size: number | null) => void,
): Promise<number> {
  const part = `${target}.part`;
  const have = existsSync(part) ? statSync(part).size : 0;
  const response = await fetchHub(hubUrl, url, { signal, headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  if (response.status === 416 && have > 0) {
    // The part already holds the whole file: the server has nothing after its last byte.
    await keep(part, target, sha256, url);
    return have;
  }
  if (!response.ok || !response.body) throw new HubError('HUB_HTTP', `the hub answered HTTP ${response.status} for ${url}`);
  const resumed = response.status === 206 && have > 0;
  const start = resumed ? have : 0;
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  const size = Number.isFinite(length) ? start + length : null;
  let received = start;
  report(received, size);
  const out = createWriteStream(part, { flags: resumed ? 'a' : 'w' });
  const closed = new Promise<void>((resolve, reject) => {
    out.on('close', resolve);
    out.on('error', reject);
  });
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      received += chunk.byteLength;
      report(received, size);
    }
  } catch (error) {
    out.end();
    await closed.catch(() => undefined);
    if (cancelled(signal)) throw new HubError('CANCELLED', `the download of ${url} was cancelled at ${received} bytes`);
    throw new HubError('HUB_HTTP', `the download of ${url} broke off at ${received} bytes: ${error instanceof Error ? error.message : String(error)}; start it again to resume`);
  }
  out.end();
  await closed;
  if (size !== null && received !== size) {
    throw new HubError('HUB_HTTP', `${url} ended at ${received} of ${size} bytes; start the download again to resume`);
  }
  await keep(part, target, sha256, url);
  return received;
}

/** Renames a complete part to its name, after checking the hub's sha256 where it gave one. */
async function keep(part: string, target: string, sha256: string | null, url: string): Promise<void> {
  if (sha256 !== null) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(part)) hash.update(chunk as Buffer);
    const got = hash.digest('hex');
    if (got !== sha256) {
      rmSync(part, { force: true }); // nothing in it is worth resuming from
      throw new HubError('HUB_CHECKSUM', `${url} arrived with sha256 ${got}, the hub lists ${sha256}; start the download again`);
    }
  }
  renameSync(part, target);
}

/** Removes a staging folder (after its files moved into the library, or when nothing is worth resuming). */
export function removeStaging(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
