/**
 * Choosing and initialising the tfjs backend at run time, and reporting what was found:
 *   tensorflow  @tensorflow/tfjs-node-gpu, else @tensorflow/tfjs-node (optional; need libtensorflow)
 *   webgpu      @tensorflow/tfjs-backend-webgpu on Dawn (the `webgpu` npm package), when an adapter is found
 *   wasm        @tensorflow/tfjs-backend-wasm with SIMD: the default
 *   cpu         the plain JS reference
 * 'auto' takes the first of tensorflow, webgpu, wasm, cpu that starts and passes a short self-test (self-test.ts);
 * a software GPU adapter (lavapipe, SwiftShader) only serves when named. A candidate that fails is reported in one
 * line (`fallback`) and the next one serves.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { registerWasmExtras, registerWebgpuExtras } from './register';
import { nativeKernelStatus, registerNativeKernels, unregisterNativeKernels, type NativeKernelOptions } from './native/index';
import { selfTest, type SelfTestResult } from './self-test';
import { registerWebgpuKernels, unregisterWebgpuKernels, webgpuKernelStatus } from './webgpu/index';

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | BackendName;
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendAvailability {
  readonly name: BackendName;
  readonly usable: boolean;
  /** What was found, or why it cannot be used: one line for logs and the UI. */
  readonly detail: string;
}

export interface BackendInfo {
  /** The backend now active. */
  readonly name: BackendName;
  /** What was asked for: 'auto' or a backend by name. */
  readonly requested: BackendPreference;
  readonly available: readonly BackendAvailability[];
  /** Which kernels serve the matrix products on the active backend. */
  readonly matmulKernels: string;
  /** The active backend's self-test: 'passed in 12 ms'. */
  readonly selfTest: string;
  /**
   * Why the backend in use is not the first choice, in one line (a candidate that failed to start or failed its
   * self-test, and what serves instead); null when the first choice serves.
   */
  readonly fallback: string | null;
}

export interface InitBackendOptions {
  /**
   * Native kernels for wasm and cpu (main/engine/backend/native/). `false` (the default here) keeps the
   * backend's own kernels; options register the native ones where the addon loads.
   */
  readonly native?: NativeKernelOptions | false;
  /**
   * The fused WGSL kernels and the GPU-held frozen weights on webgpu (backend/webgpu/): on unless false (tests and
   * benchmarks of tfjs's composed ops).
   */
  readonly webgpuKernels?: boolean;
  /**
   * For a backend chosen by name: when it cannot start or fails its self-test, fall back to what 'auto' would
   * choose (saying so in `fallback`) instead of throwing. The app's engine host sets it: a setting must never
   * leave the app without an engine.
   */
  readonly fallback?: boolean;
}

export class BackendError extends Error {
  override readonly name = 'BackendError';
  constructor(
    readonly code: 'BACKEND_UNAVAILABLE' | 'UNKNOWN_BACKEND',
    message: string,
  ) {
    super(message);
  }
}

type Probe =
  | { usable: true; detail: string; activate: () => Promise<void>; /** Served only when named, never by 'auto'. */ explicitOnly?: boolean }
  | { usable: false; detail: string };

/** Import a package by a name the bundler does not see, so optional packages stay optional. */
async function importOptional(name: string): Promise<unknown> {
  return import(/* @vite-ignore */ name);
}

async function probeTensorflow(): Promise<Probe> {
  const reasons: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await importOptional(pkg);
      if (tf.findBackendFactory('tensorflow')) {
        return { usable: true, detail: `${pkg} (libtensorflow)`, activate: async () => void (await tf.setBackend('tensorflow')) };
      }
      reasons.push(`${pkg} loaded but registered no 'tensorflow' backend`);
    } catch (error) {
      reasons.push(`${pkg}: ${firstLine(error)}`);
    }
  }
  return { usable: false, detail: `not installed or not loadable (${reasons.join('; ')})` };
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split('\n')[0] ?? '').slice(0, 160);
}

interface DawnModule {
  create(options: string[]): {
    requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean } } | null>;
  };
  globals: Record<string, unknown>;
}

/**
 * Dawn on Linux runs on Vulkan. Without a Vulkan loader it prints a warning to stderr on every start and finds no
 * adapter, so look for the loader first where the dynamic linker would find it (LD_LIBRARY_PATH's folders, then the
 * usual system library folders) and skip Dawn where there is none.
 */
const LINUX_LIBRARY_DIRS = [
  '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu',
  '/usr/lib64', '/usr/lib', '/usr/local/lib', '/usr/local/nvidia/lib64',
];

function vulkanLoaderDirs(): string[] {
  const fromEnv = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter((dir) => dir !== '');
  return [...fromEnv, ...LINUX_LIBRARY_DIRS];
}

function hasVulkanLoader(): boolean {
  return process.platform !== 'linux' || vulkanLoaderDirs().some((dir) => existsSync(join(dir, 'libvulkan.so.1')));
}

async function probeWebgpu(): Promise<Probe> {
  if (!hasVulkanLoader()) {
    return { usable: false, detail: `webgpu (Dawn) needs a Vulkan loader (libvulkan.so.1), none found in ${vulkanLoaderDirs().join(', ')}` };
  }
  try {
    const dawn = (await importOptional('webgpu')) as DawnModule;
    const gpu = dawn.create([]);
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { usable: false, detail: 'webgpu (Dawn) loaded but found no GPU adapter' };
    const info = adapter.info;
    const what = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ') || 'adapter';
    // A software rasteriser (lavapipe, SwiftShader) is a CPU underneath, slower than wasm: tests and an explicit choice only.
    const software = info?.isFallbackAdapter === true || info?.architecture === 'software';
    return {
      usable: true,
      explicitOnly: software,
      detail: software ? `Dawn: ${what} (a software adapter: used only when chosen by name)` : `Dawn: ${what}`,
      activate: async () => {
        Object.assign(globalThis, dawn.globals);
        // tfjs-backend-webgpu looks for navigator.gpu; Node 20 has no navigator.
        const nav = ((globalThis as { navigator?: object }).navigator ?? {}) as Record<string, unknown>;
        Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
        if (!(globalThis as { navigator?: object }).navigator) Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true });
        // A dependency, not optional: imported by name so bundles (the GPU check pack) carry it with their tfjs-core.
        await import('@tensorflow/tfjs-backend-webgpu');
        registerWebgpuExtras();
        if (!(await tf.setBackend('webgpu'))) throw new BackendError('BACKEND_UNAVAILABLE', 'the webgpu backend failed to initialise');
      },
    };
  } catch (error) {
    return { usable: false, detail: `webgpu (Dawn) not loadable: ${firstLine(error)}` };
  }
}

let wasmPathsSet = false;

async function probeWasm(): Promise<Probe> {
  try {
    if (!wasmPathsSet) {
      // The .wasm files ship in the package's dist/; point the loader there (Node reads them from disk).
      const require = createRequire(import.meta.url);
      setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
      wasmPathsSet = true;
    }
    const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
    // The threaded build needs Web Workers; under Node it does not start, so one thread it is.
    const detail = `tfjs-backend-wasm (XNNPACK${simd ? ', SIMD' : ', no SIMD'}, 1 thread: the threaded build needs Web Workers)`;
    return {
      usable: true,
      detail,
      activate: async () => {
        tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
        if (!(await tf.setBackend('wasm'))) throw new BackendError('BACKEND_UNAVAILABLE', 'the wasm backend failed to initialise');
        registerWasmExtras();
      },
    };
  } catch (error) {
    return { usable: false, detail: `tfjs-backend-wasm not loadable: ${firstLine(error)}` };
  }
}

async function probeCpu(): Promise<Probe> {
  return { usable: true, detail: 'tfjs-backend-cpu (plain JavaScript, the reference)', activate: async () => void (await tf.setBackend('cpu')) };
}

const PROBES: Record<BackendName, () => Promise<Probe>> = { tensorflow: probeTensorflow, webgpu: probeWebgpu, wasm: probeWasm, cpu: probeCpu };

/** What each backend would do here, without switching. */
export async function detectBackends(): Promise<{ name: BackendName; probe: Probe }[]> {
  const out: { name: BackendName; probe: Probe }[] = [];
  for (const name of BACKEND_NAMES) out.push({ name, probe: await probeOnce(name) });
  return out;
}

/** Probing loads packages (and Dawn starts a GPU instance): once per process is enough. */
const probed = new Map<BackendName, Promise<Probe>>();
function probeOnce(name: BackendName): Promise<Probe> {
  let p = probed.get(name);
  if (!p) {
    p = PROBES[name]();
    probed.set(name, p);
  }
  return p;
}

export function parseBackendPreference(value: string): BackendPreference {
  if (value === 'auto' || (BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendPreference;
  throw new BackendError('UNKNOWN_BACKEND', `backend must be one of auto, ${BACKEND_NAMES.join(', ')}; got '${value}'`);
}

function matmulKernels(name: BackendName): string {
  if (name === 'wasm' || name === 'cpu') {
    const status = nativeKernelStatus(name);
    if (status.active) return status.detail;
    return name === 'wasm' ? 'XNNPACK (tfjs-backend-wasm)' : 'plain JavaScript loops (tfjs-backend-cpu)';
  }
  return name === 'webgpu' ? `WGSL compute shaders (tfjs-backend-webgpu); ${webgpuKernelStatus().detail}` : 'libtensorflow (Eigen / cuBLAS)';
}

/** Self-test outcomes by backend and kernel set: each combination is checked once per process. */
const selfTests = new Map<string, Promise<SelfTestResult>>();

function selfTestOnce(name: BackendName): Promise<SelfTestResult> {
  const key = `${name}|${matmulKernels(name)}`;
  let result = selfTests.get(key);
  if (!result) {
    result = selfTest();
    selfTests.set(key, result);
  }
  return result;
}

/** Forgets the self-test outcomes (for tests that swap kernels in and out). */
export function forgetSelfTests(): void {
  selfTests.clear();
}

type Outcome = { ok: true; selfTest: string; note: string | null } | { ok: false; reason: string };

/** Starts one backend (native kernels on top where asked) and self-tests it; never throws. */
async function start(name: BackendName, probe: Probe & { usable: true }, options: InitBackendOptions): Promise<Outcome> {
  try {
    await probe.activate();
  } catch (error) {
    return { ok: false, reason: `${name} failed to start: ${firstLine(error)}` };
  }
  const nativeOn = options.native && (name === 'wasm' || name === 'cpu') ? registerNativeKernels(name, options.native).active : false;
  if (name === 'webgpu') {
    if (options.webgpuKernels === false) unregisterWebgpuKernels();
    else registerWebgpuKernels();
  }
  let test = await selfTestOnce(name);
  if (test.ok) return { ok: true, selfTest: test.detail, note: null };
  if (nativeOn && (name === 'wasm' || name === 'cpu')) {
    // The native kernels failed: the backend's own kernels may still serve.
    const nativeFailure = test.detail;
    unregisterNativeKernels(name);
    test = await selfTestOnce(name);
    if (test.ok) return { ok: true, selfTest: test.detail, note: `the native kernels on ${name} failed the self-test (${nativeFailure}); ${name}'s own kernels serve` };
  }
  return { ok: false, reason: `${name} failed its self-test: ${test.detail}` };
}

/**
 * Makes `preferred` the active tfjs backend (for 'auto', the first of tensorflow, webgpu, wasm, cpu that starts and
 * passes its self-test) and reports every backend's availability. A named backend that is not usable, cannot
 * start or fails its self-test is an error naming why, unless `options.fallback` lets 'auto' choose instead.
 */
export async function initBackend(preferred: BackendPreference = 'auto', options: InitBackendOptions = {}): Promise<BackendInfo> {
  const found = await detectBackends();
  const available: BackendAvailability[] = found.map(({ name, probe }) => ({ name, usable: probe.usable, detail: probe.detail }));
  const failures: string[] = [];
  const skipped: string[] = [];
  const notes: string[] = [];
  const attempt = async (names: readonly BackendName[], auto: boolean): Promise<{ name: BackendName; selfTest: string } | null> => {
    for (const name of names) {
      const probe = found.find((f) => f.name === name)?.probe;
      if (!probe?.usable || (auto && probe.explicitOnly)) {
        // Not installed, or a software adapter: what 'auto' passes over is no failure; a named one is.
        (auto ? skipped : failures).push(`${name}: ${probe?.detail ?? 'unknown'}`);
        continue;
      }
      const outcome = await start(name, probe, options);
      if (outcome.ok) {
        if (outcome.note) notes.push(outcome.note);
        return { name, selfTest: outcome.selfTest };
      }
      failures.push(outcome.reason);
      const index = available.findIndex((a) => a.name === name);
      available[index] = { name, usable: false, detail: outcome.reason };
    }
    return null;
  };
  let chosen = await attempt(preferred === 'auto' ? BACKEND_NAMES : [preferred], preferred === 'auto');
  if (chosen === null && preferred !== 'auto' && options.fallback) chosen = await attempt(BACKEND_NAMES.filter((n) => n !== preferred), true);
  if (chosen === null) {
    throw new BackendError('BACKEND_UNAVAILABLE', `backend '${preferred}' is not usable here: ${[...failures, ...skipped].join('; ')}`);
  }
  const reasons = [...failures, ...notes];
  return {
    name: chosen.name,
    requested: preferred,
    available,
    matmulKernels: matmulKernels(chosen.name),
    selfTest: chosen.selfTest,
    fallback: reasons.length > 0 ? `${reasons.join('; ')}${failures.length > 0 ? `; using ${chosen.name}` : ''}` : null,
  };
}
