/**
 * What a remote engine holds for the apps that drive it, inside its data directory under remote/:
 *   remote/content/<hex>/            a folder sent by content (a model, an adapter, a checkpoint)
 *   remote/content/<hex>.file/<name> a single file sent by content (a dataset, a GGUF model)
 *   remote/runs/<key>/               a run's output/ and checkpoints/, until the app has read them
 * An upload is written under a temp name (common/atomic's scheme, swept at start-up if the server dies) and
 * hashed as it arrives, in hashFolder's recipe; it is kept only if the bytes hash to the name it was sent under.
 * Names that arrive are checked before they touch the disk: nothing is written or read outside remote/.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { tempSibling } from '../../common/atomic';
import { folderEntryHeader, listFiles } from '../../common/hash';
import type { ContentRef, WireFile } from '../../host/remote/protocol';
import { isRelativePath } from '../../host/remote/transfer';
import { IpcError } from '../errors';

interface Upload {
  readonly ref: ContentRef;
  readonly files: readonly WireFile[];
  readonly staging: string;
  readonly hash: Hash;
  /** The file being written and how far. */
  index: number;
  offset: number;
  handle: FileHandle | null;
  /** Chunks are written one after another, in the order they arrived. */
  queue: Promise<unknown>;
}

export interface RunFolders {
  readonly key: string;
  readonly outputDir: string;
  readonly checkpointDir: string;
}

const RUN_KEY = /^[0-9a-f]{16}$/;
const RUN_FOLDER = /^(output|checkpoints\/checkpoint-\d+)$/;
const MAX_FILES = 100_000;

export class RemoteContent {
  private readonly uploads = new Map<string, Upload>();
  private readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'remote');
  }

  /** Where `ref` lives here: the folder, or the one file of a file ref; null when it is not held. */
  resolve(ref: ContentRef): string | null {
    const final = this.finalPath(ref);
    if (!existsSync(final)) return null;
    if (ref.kind === 'folder') return final;
    const [name] = readdirSync(final);
    return name === undefined ? null : join(final, name);
  }

  /** The content hash a resolved path was stored under (for answers that name the resident base). */
  refOf(path: string): string | null {
    const rel = relative(join(this.root, 'content'), path).split(sep);
    const hex = /^([0-9a-f]{64})(\.file)?$/.exec(rel[0] ?? '')?.[1];
    return hex && !rel.includes('..') ? `sha256:${hex}` : null;
  }

  /** Checks the announced files (safe relative names in hashFolder's order, one plain name for a file) and opens a staging folder. */
  begin(ref: ContentRef, files: readonly WireFile[]): string {
    if (files.length > MAX_FILES) throw new IpcError('INVALID_INPUT', `an upload holds at most ${MAX_FILES} files, got ${files.length}`);
    if (ref.kind === 'file' && (files.length !== 1 || files[0]?.path.includes('/'))) {
      throw new IpcError('INVALID_INPUT', 'a file upload holds exactly one file with a plain name');
    }
    files.forEach((file, i) => {
      if (!isRelativePath(file.path)) throw new IpcError('INVALID_INPUT', `the upload's file name '${file.path.slice(0, 200)}' leaves its folder or is empty`);
      const previous = files[i - 1];
      if (previous && !(previous.path < file.path)) throw new IpcError('INVALID_INPUT', `the upload's files must be sorted by path without repeats ('${previous.path}' before '${file.path}')`);
    });
    const final = this.finalPath(ref);
    mkdirSync(dirname(final), { recursive: true });
    const staging = tempSibling(final);
    mkdirSync(staging);
    const id = randomBytes(12).toString('hex');
    const upload: Upload = { ref, files, staging, hash: createHash('sha256'), index: 0, offset: 0, handle: null, queue: Promise.resolve() };
    this.uploads.set(id, upload);
    return id;
  }

  /** The next bytes of upload `id`; resolves with how many bytes of it have arrived in all. */
  chunk(id: string, data: Buffer): Promise<number> {
    const upload = this.upload(id);
    const next = upload.queue.then(() => this.write(upload, data));
    upload.queue = next.catch(() => undefined);
    return next.catch(async (error: unknown) => {
      await this.abort(id);
      throw error;
    });
  }

  /** All bytes arrived and they hash to the upload's name: the content is kept; otherwise it is dropped. */
  async commit(id: string): Promise<ContentRef> {
    const upload = this.upload(id);
    await upload.queue;
    await this.openNext(upload); // zero-length files at the end
    this.uploads.delete(id);
    const complete = upload.index === upload.files.length;
    const digest = `sha256:${upload.hash.digest('hex')}`;
    if (!complete || digest !== upload.ref.hash) {
      await upload.handle?.close();
      rmSync(upload.staging, { recursive: true, force: true });
      throw new IpcError('INVALID_INPUT', complete
        ? `the content sent as ${upload.ref.hash} hashes to ${digest}; nothing was kept, send it again`
        : `the upload of ${upload.ref.hash} ended before all its files arrived (${upload.files[upload.index]?.path ?? ''}); nothing was kept`);
    }
    const final = this.finalPath(upload.ref);
    if (existsSync(final)) rmSync(upload.staging, { recursive: true, force: true }); // sent twice at once: one copy serves
    else renameSync(upload.staging, final);
    return upload.ref;
  }

  /** Drops an unfinished upload (its connection closed, or it failed). */
  async abort(id: string): Promise<void> {
    const upload = this.uploads.get(id);
    if (!upload) return;
    this.uploads.delete(id);
    await upload.queue;
    await upload.handle?.close().catch(() => undefined);
    rmSync(upload.staging, { recursive: true, force: true });
  }

  /** A fresh run folder for one training, estimate or check. */
  newRun(): RunFolders {
    const key = randomBytes(8).toString('hex');
    const dir = join(this.root, 'runs', key);
    mkdirSync(dir, { recursive: true });
    return { key, outputDir: join(dir, 'output'), checkpointDir: join(dir, 'checkpoints') };
  }

  /** The files of a folder of a run: 'output' (the adapter) or 'checkpoints/checkpoint-<step>'. */
  files(key: string, folder: string): WireFile[] {
    const dir = join(this.runDir(key), ...folder.split('/'));
    if (!RUN_FOLDER.test(folder) || !existsSync(dir)) throw new IpcError('NOT_FOUND', `run ${key} has no folder '${folder.slice(0, 100)}'`);
    return listFiles(dir);
  }

  /** Up to `length` bytes from `offset` of a file of a run's folder, by its path in the run folder. */
  async read(key: string, path: string, offset: number, length: number): Promise<Buffer> {
    const folder = /^(output|checkpoints\/checkpoint-\d+)\//.exec(path)?.[1];
    const inFolder = folder === undefined ? undefined : path.slice(folder.length + 1);
    const file = folder === undefined ? undefined : this.files(key, folder).find((f) => f.path === inFolder);
    if (!file) throw new IpcError('NOT_FOUND', `run ${key} has no file '${path.slice(0, 200)}'`);
    const handle = await open(join(this.runDir(key), ...path.split('/')), 'r');
    try {
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, file.bytes - offset)));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  releaseRun(key: string): boolean {
    const dir = this.runDir(key);
    if (!existsSync(dir)) return false;
    rmSync(dir, { recursive: true, force: true });
    return true;
  }

  /** The checkpoint folder a progress event names, as '<run>/checkpoints/checkpoint-<step>', or null outside `run`. */
  checkpointName(run: RunFolders, path: string): string | null {
    const rel = relative(run.checkpointDir, path).split(sep);
    return rel.length === 1 && /^checkpoint-\d+$/.test(rel[0] ?? '') ? `${run.key}/checkpoints/${rel[0]}` : null;
  }

  private runDir(key: string): string {
    if (!RUN_KEY.test(key)) throw new IpcError('INVALID_INPUT', `'${key.slice(0, 40)}' is not a run of this engine`);
    return join(this.root, 'runs', key);
  }

  private finalPath(ref: ContentRef): string {
    const hex = ref.hash.slice('sha256:'.length);
    return join(this.root, 'content', ref.kind === 'folder' ? hex : `${hex}.file`);
  }

  private upload(id: string): Upload {
    const upload = this.uploads.get(id);
    if (!upload) throw new IpcError('NOT_FOUND', `no upload '${id.slice(0, 40)}' is open on this connection`);
    return upload;
  }

  /** Moves past finished files (zero-length ones too), opening the next file to write and hashing its header. */
  private async openNext(upload: Upload): Promise<void> {
    for (;;) {
      const file = upload.files[upload.index];
      if (!file) return;
      if (upload.handle && upload.offset < file.bytes) return;
      if (upload.handle) {
        await upload.handle.close();
        upload.handle = null;
        upload.index++;
        upload.offset = 0;
        continue;
      }
      if (upload.ref.kind === 'folder') upload.hash.update(folderEntryHeader(file));
      const target = join(upload.staging, ...file.path.split('/'));
      mkdirSync(dirname(target), { recursive: true });
      upload.handle = await open(target, 'wx');
      if (file.bytes > 0) return;
    }
  }

  private async write(upload: Upload, data: Buffer): Promise<number> {
    let at = 0;
    while (at < data.length) {
      await this.openNext(upload);
      const file = upload.files[upload.index];
      if (!file || !upload.handle) throw new IpcError('INVALID_INPUT', `the upload of ${upload.ref.hash} sent more bytes than its files hold`);
      const take = Math.min(data.length - at, file.bytes - upload.offset);
      const piece = data.subarray(at, at + take);
      await upload.handle.write(piece, 0, piece.length, upload.offset);
      upload.hash.update(piece);
      upload.offset += take;
      at += take;
    }
    await this.openNext(upload);
    return upload.files.slice(0, upload.index).reduce((n, f) => n + f.bytes, 0) + upload.offset;
  }
}
