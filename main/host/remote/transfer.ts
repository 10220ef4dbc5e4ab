/**
 * Content between this machine and a remote engine. Up: what the remote lacks (asked by content hash first, so a
 * model it already holds is never sent again), file by file in hashFolder's order, in chunks; the remote keeps it
 * only if the bytes hash to the name. Down: a run's output, read by name into a temp folder and renamed into
 * place whole, so a connection lost halfway leaves nothing behind.
 */
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { tempSibling } from '../../common/atomic';
import { hashModel, listFiles } from '../../common/hash';
import type { RemoteConnection } from './connection';
import { CHUNK_BYTES, type ContentRef, type RemoteOutput, type WireFile } from './protocol';

/** A local folder or file and its content reference. */
export interface LocalContent {
  readonly path: string;
  readonly ref: ContentRef;
}

/**
 * Content hashes of paths this app sent or referenced, by path: a base model's from the library's record (`recorded`),
 * others hashed once (library folders do not change once written, so a chat turn does not hash them again; a
 * changed size or modification time hashes afresh).
 */
export class ContentHashes {
  private readonly known = new Map<string, { hash: string; stamp: string }>();

  constructor(private readonly recorded: (path: string) => string | null = () => null) {}

  ref(path: string, knownHash?: string | null): LocalContent {
    const stat = statSync(path);
    const kind = stat.isFile() ? 'file' : 'folder';
    const stamp = `${stat.size}:${stat.mtimeMs}`;
    const cached = this.known.get(path);
    const hash = knownHash ?? (cached?.stamp === stamp ? cached.hash : this.recorded(path) ?? hashModel(path));
    this.known.set(path, { hash, stamp });
    return { path, ref: { hash, kind } };
  }

  /** The local path a content hash was last seen at (to answer a remote status in this machine's paths). */
  pathOf(hash: string): string | null {
    for (const [path, entry] of this.known) if (entry.hash === hash) return path;
    return null;
  }
}

/** '/'-separated, relative, no '.' or '..' segment, no NUL or backslash: a path that stays inside its folder. */
export function isRelativePath(path: string): boolean {
  if (path.length === 0 || path.length > 1024 || /[\0\\]/.test(path)) return false;
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

function filesOf(content: LocalContent): WireFile[] {
  return content.ref.kind === 'file'
    ? [{ path: basename(content.path), bytes: statSync(content.path).size }]
    : listFiles(content.path);
}

/** Sends what the remote lacks of `contents`; resolves when the remote holds all of them. */
export async function sendContents(connection: RemoteConnection, contents: readonly LocalContent[], signal?: AbortSignal): Promise<void> {
  if (contents.length === 0) return;
  const { missing } = await connection.call({ type: 'has', refs: contents.map((c) => c.ref) });
  for (const ref of missing) {
    const content = contents.find((c) => c.ref.hash === ref.hash && c.ref.kind === ref.kind);
    if (content) await sendOne(connection, content, signal);
  }
}

async function sendOne(connection: RemoteConnection, content: LocalContent, signal?: AbortSignal): Promise<void> {
  const files = filesOf(content);
  const { upload } = await connection.call({ type: 'upload', ref: content.ref, files });
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  for (const file of files) {
    const path = content.ref.kind === 'file' ? content.path : join(content.path, file.path);
    const handle = await open(path, 'r');
    try {
      for (let offset = 0; offset < file.bytes;) {
        signal?.throwIfAborted();
        const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK_BYTES, file.bytes - offset), offset);
        if (bytesRead === 0) throw new Error(`${path} became shorter while it was being sent; send it again`);
        await connection.call({ type: 'chunk', upload, data: buffer.subarray(0, bytesRead).toString('base64') });
        offset += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }
  await connection.call({ type: 'commit', upload });
}

/** Reads a folder of a run into `destDir` (replacing what an earlier attempt left there), all or nothing. */
export async function receiveOutput(connection: RemoteConnection, output: RemoteOutput, destDir: string): Promise<void> {
  mkdirSync(dirname(destDir), { recursive: true });
  const staging = tempSibling(destDir);
  try {
    for (const file of output.files) {
      if (!isRelativePath(file.path)) throw new Error(`the remote named an output file '${file.path.slice(0, 200)}' outside its folder`);
      const target = join(staging, ...file.path.split('/'));
      mkdirSync(dirname(target), { recursive: true });
      const handle = await open(target, 'w');
      try {
        for (let offset = 0; offset < file.bytes;) {
          const { data } = await connection.call({ type: 'read', run: output.run, path: `${output.folder}/${file.path}`, offset, length: Math.min(CHUNK_BYTES, file.bytes - offset) });
          const bytes = Buffer.from(data, 'base64');
          if (bytes.length === 0) throw new Error(`the remote sent no bytes of ${file.path} at ${offset}`);
          await handle.write(bytes, 0, bytes.length, offset);
          offset += bytes.length;
        }
      } finally {
        await handle.close();
      }
    }
    mkdirSync(staging, { recursive: true });
    rmSync(destDir, { recursive: true, force: true });
    renameSync(staging, destDir);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}
