/**
 * GGUF models already on this computer, found where their apps keep them, without copying anything:
 *   Ollama     <models>/manifests/<host>/<namespace>/<model>/<tag> (JSON) naming a model layer
 *              (application/vnd.ollama.image.model) whose blob is <models>/blobs/sha256-<hex>, a GGUF file;
 *   LM Studio  <models>/<publisher>/<repo>/*.gguf (vision projectors, mmproj-*.gguf, left out);
 *   a folder   any *.gguf below it.
 * Each file's header is read (no weights) to say what it is and whether this engine can train on it.
 * The caller chooses the folders (the engine reads no environment): see the library handler for the defaults.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describeGguf, type GgufSummary } from './gguf-describe';

export type GgufOrigin = 'ollama' | 'lmstudio' | 'folder';

export interface FoundGguf {
  readonly origin: GgufOrigin;
  /** Ollama: 'qwen2.5:0.5b'; LM Studio: 'publisher/repo/file.gguf'; a folder: the path below it. */
  readonly name: string;
  /** The GGUF file itself (for Ollama, the blob). */
  readonly path: string;
  readonly bytes: number;
  /** 'sha256:<hex>' where the app records it (Ollama's blob digest): the content hash without reading the file. */
  readonly digest: string | null;
  readonly summary: GgufSummary | null;
  /** Why it cannot be used as a base here, or null. */
  readonly problem: string | null;
  /** What an import leaves out (an Ollama model's own adapter or vision projector). */
  readonly note: string | null;
}

const MODEL_LAYER = 'application/vnd.ollama.image.model';
const ADAPTER_LAYER = 'application/vnd.ollama.image.adapter';
const PROJECTOR_LAYER = 'application/vnd.ollama.image.projector';
const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;

function describe(origin: GgufOrigin, name: string, path: string, digest: string | null, note: string | null): FoundGguf {
  let bytes = 0;
  try {
    bytes = statSync(path).size;
    const summary = describeGguf(path);
    const problem = summary.unreadable.length > 0 ? summary.unreadable.join('; ') : null;
    return { origin, name, path, bytes, digest, summary, problem, note };
  } catch (error) {
    return { origin, name, path, bytes, digest, summary: null, problem: (error as Error).message, note };
  }
}

function files(dir: string, depth: number, out: string[] = []): string[] {
  if (depth < 0) return out;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let isDir = false;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      continue;
    }
    if (isDir) files(path, depth - 1, out);
    else out.push(path);
  }
  return out;
}

/** The Ollama name of a manifest at <host>/<namespace>/<model>/<tag>. */
function ollamaName(parts: readonly string[]): string {
  const [host, namespace, model, tag] = parts as [string, string, string, string];
  if (host === 'registry.ollama.ai') return namespace === 'library' ? `${model}:${tag}` : `${namespace}/${model}:${tag}`;
  return `${host}/${namespace}/${model}:${tag}`;
}

/** Models in an Ollama models folder (~/.ollama/models by default). */
export function findOllamaModels(modelsDir: string): FoundGguf[] {
  const manifests = join(modelsDir, 'manifests');
  if (!existsSync(manifests)) return [];
  const found: FoundGguf[] = [];
  for (const path of files(manifests, 4)) {
    const parts = relative(manifests, path).split(sep);
    if (parts.length !== 4) continue;
    let layers: { mediaType?: unknown; digest?: unknown }[];
    try {
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as { layers?: unknown };
      if (!Array.isArray(manifest.layers)) continue;
      layers = manifest.layers as typeof layers;
    } catch {
      continue;
    }
    const model = layers.find((l) => l.mediaType === MODEL_LAYER);
    if (!model || typeof model.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(model.digest)) continue;
    const blob = join(modelsDir, 'blobs', model.digest.replace(':', '-'));
    const name = ollamaName(parts);
    const extras = [
      ...(layers.some((l) => l.mediaType === ADAPTER_LAYER) ? ['its own LoRA adapter'] : []),
      ...(layers.some((l) => l.mediaType === PROJECTOR_LAYER) ? ['its vision projector'] : []),
    ];
    const note = extras.length > 0 ? `the base model is imported without ${extras.join(' and ')}` : null;
    if (!existsSync(blob)) {
      found.push({ origin: 'ollama', name, path: blob, bytes: 0, digest: model.digest, summary: null, problem: `its model blob ${blob} is missing (an interrupted pull?)`, note });
      continue;
    }
    found.push(describe('ollama', name, blob, model.digest, note));
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** *.gguf files below `dir` (LM Studio's models folder, or one the user picks), at most `depth` folders down. */
export function findGgufFiles(dir: string, origin: 'lmstudio' | 'folder', depth = 4): FoundGguf[] {
  if (!existsSync(dir)) return [];
  const found: FoundGguf[] = [];
  for (const path of files(dir, depth)) {
    if (!/\.gguf$/i.test(path)) continue;
    const name = relative(dir, path).split(sep).join('/');
    if (/mmproj/i.test(name)) continue;
    const split = SPLIT.exec(name);
    if (split) {
      if (split[1] !== '00001') continue;
      found.push({ origin, name, path, bytes: statSync(path).size, digest: null, summary: null, problem: `a model split into ${Number(split[2])} files; join them with llama.cpp's llama-gguf-split --merge first`, note: null });
      continue;
    }
    found.push(describe(origin, name, path, null, null));
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}
