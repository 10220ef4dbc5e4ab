/**
 * llama.cpp as the independent reference for the GGUF tests, all from the node-llama-cpp dev dependency (3.21.1):
 *   - its prebuilt libllama / libggml (the same code llama.cpp's tools and Ollama run),
 *   - its bundled llama.cpp source (a git bundle): the C headers and the vocabulary GGUFs that llama.cpp's own
 *     converter wrote (models/ggml-vocab-*.gguf),
 *   - ggml-tool.c beside this file, compiled here against both, exposing ggml's quantizers, dequantizers, GGUF
 *     parser and llama_model_quantize to the tests,
 *   - and the Node binding itself (getLlama) for logits.
 * Everything is derived once into node_modules/.cache and reused; a missing compiler or git fails loudly.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');

export function nodeLlamaCppDir(): string {
  const dir = join(root, 'node_modules', 'node-llama-cpp');
  if (!existsSync(join(dir, 'package.json'))) throw new Error(`${dir}: node-llama-cpp is not installed (npm ci installs it as a dev dependency)`);
  return dir;
}

/** The prebuilt binaries' folder for this platform (e.g. @node-llama-cpp/linux-x64/bins/linux-x64). */
export function llamaCppBinDir(): string {
  const platform = `${process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`;
  const bins = join(root, 'node_modules', '@node-llama-cpp', platform, 'bins');
  if (!existsSync(bins)) throw new Error(`${bins}: node-llama-cpp's prebuilt binaries for ${platform} are not installed`);
  const sub = readdirSync(bins).find((d) => statSync(join(bins, d)).isDirectory());
  if (!sub) throw new Error(`${bins}: no prebuilt llama.cpp binaries`);
  return join(bins, sub);
}

function cacheDir(): string {
  const bundle = join(nodeLlamaCppDir(), 'llama', 'gitRelease.bundle');
  const version = (JSON.parse(readFileSync(join(nodeLlamaCppDir(), 'package.json'), 'utf8')) as { version: string }).version;
  return join(root, 'node_modules', '.cache', 'lorasmith-llama-cpp', `${version}-${statSync(bundle).size}`);
}

/** Makes `dir` once: `make` fills a temporary sibling that is renamed into place (safe with parallel test files). */
function once(dir: string, make: (temp: string) => void): string {
  if (existsSync(dir)) return dir;
  const temp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(temp, { recursive: true });
  try {
    make(temp);
    try {
      renameSync(temp, dir);
    } catch (error) {
      if (!existsSync(dir)) throw error; // another process finished first
    }
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
  return dir;
}

/** llama.cpp's source at the release node-llama-cpp was built from: headers and the vocabulary GGUFs. */
export function llamaCppSource(): string {
  return once(join(cacheDir(), 'source'), (temp) => {
    const bundle = join(nodeLlamaCppDir(), 'llama', 'gitRelease.bundle');
    const repo = join(temp, '.repo');
    execFileSync('git', ['init', '-q', '--bare', repo]);
    execFileSync('git', ['-C', repo, 'fetch', '-q', bundle, 'HEAD:refs/heads/release']);
    const archive = execFileSync('git', ['-C', repo, 'archive', 'release', 'include', 'ggml/include', 'models'], { maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', temp], { input: archive });
    rmSync(repo, { recursive: true, force: true });
  });
}

/** A vocabulary-only GGUF written by llama.cpp's converter (models/ggml-vocab-<name>.gguf). */
export function llamaCppVocab(name: 'llama-spm' | 'llama-bpe' | 'qwen2' | 'gpt-2' | 'phi-3'): string {
  return join(llamaCppSource(), 'models', `ggml-vocab-${name}.gguf`);
}

/** ggml-tool compiled against llama.cpp's headers and prebuilt libraries. */
export function ggmlTool(): string {
  const source = readFileSync(join(here, 'ggml-tool.c'));
  const dir = once(join(cacheDir(), `tool-${createHash('sha256').update(source).digest('hex').slice(0, 12)}`), (temp) => {
    const src = llamaCppSource();
    const bin = llamaCppBinDir();
    const libs = readdirSync(bin).filter((f) => /^lib(llama|ggml|ggml-base)(\.v[\d.]+)?\.so$/.test(f));
    execFileSync('cc', [
      '-O1', '-o', join(temp, 'ggml-tool'), join(here, 'ggml-tool.c'),
      '-I', join(src, 'include'), '-I', join(src, 'ggml', 'include'),
      '-L', bin, ...libs.map((l) => `-l:${l}`), `-Wl,-rpath,${bin}`,
    ]);
  });
  return join(dir, 'ggml-tool');
}

export function runGgmlTool(args: readonly string[]): string {
  return execFileSync(ggmlTool(), args, { encoding: 'utf8', maxBuffer: 1 << 30 });
}

export interface GgmlDump {
  readonly version: number;
  readonly alignment: number;
  readonly dataOffset: number;
  readonly metadata: Map<string, { type: number; value: unknown; itemType?: number }>;
  readonly tensors: { name: string; type: number; offset: number; size: number }[];
}

/** What ggml's own GGUF parser reads from `path`. */
export function ggmlDump(path: string): GgmlDump {
  const lines = runGgmlTool(['dump', path]).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const head = lines[0] as { version: number; alignment: number; data_offset: number };
  const metadata = new Map<string, { type: number; value: unknown; itemType?: number }>();
  const tensors: GgmlDump['tensors'] = [];
  for (const line of lines.slice(1)) {
    if (typeof line.key === 'string') {
      metadata.set(line.key, { type: line.type as number, value: line.value, ...(line.item_type !== undefined ? { itemType: line.item_type as number } : {}) });
    } else {
      tensors.push({ name: line.tensor as string, type: line.type as number, offset: line.offset as number, size: line.size as number });
    }
  }
  return { version: head.version, alignment: head.alignment, dataOffset: head.data_offset, metadata, tensors };
}

// ---- llama.cpp itself, through node-llama-cpp's binding (CPU, prebuilt; it never builds or downloads) ----

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
let llamaInstance: Promise<Llama> | null = null;

export function llamaCpp(): Promise<Llama> {
  llamaInstance ??= import('node-llama-cpp').then(({ getLlama, LlamaLogLevel }) =>
    getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error }));
  return llamaInstance;
}

export interface LlamaCppRun {
  /** Per position, log p(next token) over the whole vocabulary, as llama.cpp computes it. */
  readonly logProbs: Float64Array[];
}

/**
 * Runs `tokens` through llama.cpp (the GGUF at `modelPath`, with LoRA adapters when given) and returns the
 * log-softmax of its logits at every position: node-llama-cpp's greedy sampler keeps the raw logits, whose
 * softmax it reports as `probabilities`.
 */
export async function llamaCppLogProbs(modelPath: string, tokens: readonly number[], lora: readonly { path: string; scale?: number }[] = []): Promise<LlamaCppRun> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const context = await model.createContext({
      contextSize: Math.max(64, tokens.length + 8),
      batchSize: tokens.length,
      // One thread: on a busy machine ggml's threads spin waiting for each other (hundreds of ms a token).
      threads: 1,
      // float32 keys and values (llama.cpp's default cache is F16, which would round every attention input)
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      flashAttention: false,
      ...(lora.length > 0 ? { lora: { adapters: lora.map((l) => ({ filePath: l.path, scale: l.scale ?? 1 })) } } : {}),
    });
    try {
      const sequence = context.getSequence();
      const input = tokens.map((t) => [t as Token, { generateNext: { probabilities: true } }] as const);
      const results = await sequence.controlledEvaluate(input.map(([t, o]) => [t, o]));
      const logProbs = results.map((r, i) => {
        const probs = r?.next.probabilities;
        if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
        const out = new Float64Array(probs.size).fill(-Infinity);
        for (const [token, p] of probs) out[token] = Math.log(p);
        return out;
      });
      return { logProbs };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's own tokenization of `text` with the GGUF's vocabulary (special tokens parsed as in chat prompts). */
export async function llamaCppTokenize(modelPath: string, texts: readonly string[]): Promise<number[][]> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0, vocabOnly: true });
  try {
    return texts.map((t) => [...model.tokenize(t, false)]);
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's greedy continuation of `prompt` up to `maxLength` tokens (its sampler at temperature 0). */
export async function llamaCppGreedy(modelPath: string, prompt: readonly number[], maxLength: number): Promise<number[]> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const context = await model.createContext({
      contextSize: Math.max(64, maxLength + 8), batchSize: Math.max(8, prompt.length), threads: 1,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false,
    });
    try {
      const sequence = context.getSequence();
      const out = [...prompt];
      let input: number[] = [...prompt];
      while (out.length < maxLength) {
        const last = input.length - 1;
        const results = await sequence.controlledEvaluate(input.map((t, i) => (i === last ? [t as Token, { generateNext: { token: true } }] : (t as Token))));
        const next = results[last]?.next.token;
        if (next === undefined || next === null) throw new Error('llama.cpp produced no token');
        out.push(next);
        input = [next];
      }
      return out;
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}
