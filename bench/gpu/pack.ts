/**
 * The GPU check pack: everything a machine with a GPU and no Node, no npm and no network needs to run lorasmith's
 * webgpu checks and benchmark, in one folder under 64 MiB:
 *
 *   run.sh              unpacks the payload and runs the checks (bench/gpu/run.sh)
 *   payload.tar.xz      lorasmith-gpu/
 *                         bin/node                 this Node binary, stripped
 *                         lib/libvulkan.so.1       the Vulkan loader Dawn opens (the GPU's driver brings the rest)
 *                         lib/libGLdispatch.so.0 … libglvnd, which NVIDIA's Vulkan driver links against, where here
 *                         package.json             name and version, for `lorasmith --version`
 *                         app/bundle/*.mjs         the CLI and the GPU check, bundled with esbuild (engine and tfjs inside)
 *                         app/node_modules/webgpu  Dawn (index.js + dist/linux-x64/dawn.node)
 *                         app/node_modules/@tensorflow/tfjs-backend-wasm  its .wasm files
 *                         peer_torch.py            the PyTorch CUDA peer of the benchmark step (with train_torch.py)
 *                         handoff_check.py         an exported run's train.py (transformers + PEFT) against the engine
 *                         models/tiny-random-*     the conformance suite's tiny llama and gpt2 with their upstream
 *                                                  greedy sequences (test/fixtures): the greedy and hand-off steps
 *                         COMMIT                   the source it was built from
 *   MANIFEST.json       what is inside, with sizes and SHA-256
 *
 *   node --import ./bin/register-ts.js bench/gpu/pack.ts [--out DIR]     (default bench/gpu/pack/)
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '../..');
/** What the device machine may receive in all; the pack must leave room for nothing else. */
export const PACK_LIMIT_BYTES = 64 * 2 ** 20;
/** Where the pack keeps the CLI's bundle, relative to lorasmith-gpu/. */
export const CLI_BUNDLE = 'app/bundle/lorasmith.mjs';
export const CHECK_BUNDLE = 'app/bundle/gpu-check.mjs';
/** The fixtures packed under models/: their upstream greedy sequences are checked on the GPU; the llama is trained. */
export const TINY_MODELS = ['tiny-random-llama', 'tiny-random-gpt2'];

const LIBRARY_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];

export class PackError extends Error {
  override readonly name = 'PackError';
  constructor(readonly code: 'PACK_UNSUPPORTED' | 'PACK_TOOL_MISSING' | 'PACK_TOO_LARGE' | 'PACK_BUNDLE_FAILED', message: string) {
    super(message);
  }
}

export interface PackOptions {
  /** The folder to write (created; an existing one is replaced). */
  readonly outDir: string;
  /** xz preset 0..9: 6 packs Node to about 22 MB in about a minute of one core; 2 to about 25 MB in 18 s. */
  readonly xzPreset?: number;
}

export interface PackFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface PackResult {
  readonly outDir: string;
  /** Bytes of everything in outDir: what travels. */
  readonly bytes: number;
  readonly files: readonly PackFile[];
}

function run(command: string, args: readonly string[], what: string): void {
  const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new PackError('PACK_TOOL_MISSING', `${what} needs '${command}', which is not installed`);
  }
  if (result.status !== 0) throw new PackError('PACK_TOOL_MISSING', `${what} failed: ${command} ${args.join(' ')}: ${result.stderr.trim()}`);
}

function hasTool(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** libglvnd's libraries a GPU vendor's GLX / EGL driver links against (packages libglvnd0, libglx0, libegl1). */
const GLVND_LIBRARIES = ['libGLdispatch.so.0', 'libGLX.so.0', 'libEGL.so.1'];

function systemLibrary(name: string): string | null {
  for (const dir of LIBRARY_DIRS) {
    const path = join(dir, name);
    if (existsSync(path)) return realpathSync(path);
  }
  return null;
}

function vulkanLoader(): string {
  const path = systemLibrary('libvulkan.so.1');
  if (path !== null) return path;
  throw new PackError('PACK_TOOL_MISSING', `no Vulkan loader (libvulkan.so.1) in ${LIBRARY_DIRS.join(', ')}: apt-get install libvulkan1`);
}

/** The CLI and the GPU check as ES modules sharing one copy of the engine and tfjs (code splitting). */
async function bundle(outDir: string): Promise<void> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { lorasmith: 'bench/gpu/cli-entry.ts', 'gpu-check': 'bench/gpu/check.ts' },
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // tfjs's ESM builds: its packages mark the CommonJS ones as free of side effects, so importing a backend for its
    // registration would be dropped, and the gradient registrations exist only as ESM.
    mainFields: ['module', 'main'],
    alias: { 'better-sqlite3': join(ROOT, 'bench/gpu/no-sqlite.ts') },
    // Dawn loads its .node file beside it; the optional backends are found at run time or not at all.
    external: ['webgpu', 'electron', 'node-llama-cpp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
    // CommonJS inside the bundle (emscripten's wasm loader) expects require and __dirname.
    banner: {
      js: "import { createRequire as __packRequire } from 'node:module'; import { fileURLToPath as __packPath } from 'node:url'; " +
        "import { dirname as __packDirname } from 'node:path'; const require = __packRequire(import.meta.url); " +
        'const __filename = __packPath(import.meta.url); const __dirname = __packDirname(__filename);',
    },
    logLevel: 'silent',
  }).catch((error: unknown) => {
    throw new PackError('PACK_BUNDLE_FAILED', `esbuild could not bundle the CLI and the GPU check: ${error instanceof Error ? error.message : String(error)}`);
  });
  if (result.errors.length > 0) throw new PackError('PACK_BUNDLE_FAILED', result.errors.map((e) => e.text).join('; '));
}

function copyInto(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

/** Every file under `dir`, relative to it. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

function describe(dir: string, path: string): PackFile {
  const data = readFileSync(join(dir, path));
  return { path, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/** Lays out lorasmith-gpu/ under `stage`. */
async function stagePayload(stage: string): Promise<void> {
  const top = join(stage, 'lorasmith-gpu');
  const require = createRequire(join(ROOT, 'package.json'));
  await bundle(join(top, 'app/bundle'));

  const node = join(top, 'bin/node');
  copyInto(process.execPath, node);
  chmodSync(node, 0o755);
  // Node's symbols are a tenth of its size and nothing the checks need.
  if (hasTool('strip')) run('strip', [node], 'stripping node');

  copyInto(vulkanLoader(), join(top, 'lib/libvulkan.so.1'));
  // NVIDIA's Vulkan driver is libGLX_nvidia.so.0, which needs libglvnd's dispatch library; a CUDA-only machine may
  // lack it (its loader then says "Could not get 'vkCreateInstance'" and finds no driver).
  for (const name of GLVND_LIBRARIES) {
    const path = systemLibrary(name);
    if (path !== null) copyInto(path, join(top, 'lib', name));
  }

  const dawn = dirname(require.resolve('webgpu/package.json'));
  for (const file of ['package.json', 'index.js', `dist/linux-x64/dawn.node`]) copyInto(join(dawn, file), join(top, 'app/node_modules/webgpu', file));

  const wasm = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  copyInto(join(wasm, 'package.json'), join(top, 'app/node_modules/@tensorflow/tfjs-backend-wasm/package.json'));
  for (const file of readdirSync(join(wasm, 'dist')).filter((f) => f.endsWith('.wasm'))) {
    copyInto(join(wasm, 'dist', file), join(top, 'app/node_modules/@tensorflow/tfjs-backend-wasm/dist', file));
  }

  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  writeFileSync(join(top, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module' }, null, 2) + '\n');
  copyInto(join(ROOT, 'bench/gpu/peer_torch.py'), join(top, 'peer_torch.py'));
  copyInto(join(ROOT, 'bench/train_torch.py'), join(top, 'train_torch.py'));
  copyInto(join(ROOT, 'bench/gpu/handoff_check.py'), join(top, 'handoff_check.py'));
  for (const name of TINY_MODELS) {
    const from = join(ROOT, 'test/fixtures', name);
    for (const file of readdirSync(from)) copyInto(join(from, file), join(top, 'models', name, file));
  }
  const commit = spawnSync('git', ['-C', ROOT, 'describe', '--always', '--dirty'], { encoding: 'utf8' });
  writeFileSync(join(top, 'COMMIT'), commit.status === 0 ? commit.stdout.trim() : 'unknown');
}

export async function buildPack(options: PackOptions): Promise<PackResult> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new PackError('PACK_UNSUPPORTED', `the GPU check pack is built on linux-x64 for linux-x64 machines; this is ${process.platform}-${process.arch}`);
  }
  for (const tool of ['tar', 'xz']) if (!hasTool(tool)) throw new PackError('PACK_TOOL_MISSING', `building the pack needs '${tool}'`);
  const preset = options.xzPreset ?? 6;
  const stage = mkdtempSync(join(tmpdir(), 'lorasmith-gpu-pack-'));
  const outDir = resolve(options.outDir);
  try {
    await stagePayload(stage);
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    const payload = join(outDir, 'payload.tar.xz');
    run('tar', ['-C', stage, '-cf', join(stage, 'payload.tar'), 'lorasmith-gpu'], 'archiving the payload');
    run('xz', [`-${preset}`, '-T2', '-z', join(stage, 'payload.tar')], 'compressing the payload');
    copyFileSync(join(stage, 'payload.tar.xz'), payload);
    copyFileSync(join(ROOT, 'bench/gpu/run.sh'), join(outDir, 'run.sh'));
    chmodSync(join(outDir, 'run.sh'), 0o755);
    const inside = listFiles(join(stage, 'lorasmith-gpu')).map((path) => describe(join(stage, 'lorasmith-gpu'), path));
    writeFileSync(join(outDir, 'MANIFEST.json'), JSON.stringify({
      node: process.version, built: new Date().toISOString(), payload: inside,
    }, null, 2) + '\n');
    const files = listFiles(outDir).map((path) => describe(outDir, path));
    const bytes = files.reduce((sum, f) => sum + f.bytes, 0);
    if (bytes >= PACK_LIMIT_BYTES) {
      throw new PackError('PACK_TOO_LARGE', `the pack is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the ${PACK_LIMIT_BYTES / 2 ** 20} MiB a device machine receives`);
    }
    return { outDir, bytes, files };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--out');
  const outDir = at > 0 ? (process.argv[at + 1] ?? '') : join(ROOT, 'bench/gpu/pack');
  const result = await buildPack({ outDir });
  for (const f of result.files) console.log(`${(f.bytes / 2 ** 20).toFixed(1).padStart(6)} MiB  ${f.path}`);
  console.log(`${(result.bytes / 2 ** 20).toFixed(1)} MiB in ${result.outDir} (limit ${PACK_LIMIT_BYTES / 2 ** 20} MiB)`);
}
