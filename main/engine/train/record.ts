/** training_record.json: everything needed to know how an adapter was made (settings, data, base, seed, metrics). */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';

export const TRAINING_RECORD_FILE = 'training_record.json';

/** sha256 of a file, read in chunks (model weights can exceed a Buffer). */
export function sha256OfFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(1 << 22);
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Identity of a base model folder: sha256 over the names and hashes of config.json and its *.safetensors files. */
export function hashModelDir(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((n) => n === 'config.json' || n.endsWith('.safetensors')).sort();
  if (files.length === 0) return null;
  const hash = createHash('sha256');
  for (const name of files) hash.update(`${name}\0${sha256OfFile(join(dir, name))}\n`);
  return hash.digest('hex');
}
