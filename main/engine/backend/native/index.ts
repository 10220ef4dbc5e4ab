/**
 * Optional native kernels on the wasm and cpu backends: the matrix products (BatchMatMul, _FusedMatMul, and so
 * every matMul and its gradients) run through a BLAS sgemm (OpenBLAS, or Accelerate on macOS) in a small N-API
 * addon, on the tensors' own memory; so do float32 gathers, and the fused kernels behind ../fused-ops.ts (attention,
 * rotary, SwiGLU, RMSNorm, cross-entropy, each with its gradient), and the frozen-weight store (../frozen.ts) that
 * keeps base weights outside the heap at their stored precision. Where the addon is missing or fails to load, nothing
 * changes and the status says why; results never depend on which kernels run, only speed does.
 *
 *   const status = registerNativeKernels('wasm', { threads: 2 });
 *   // { active: true, detail: 'native sgemm (OpenBLAS …, 2 threads) for BatchMatMul, _FusedMatMul on wasm', … }
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { BASE_PRECISIONS, isBasePrecision, registerFrozenStore, unregisterFrozenStore, type BasePrecision } from '../frozen';
import { hasFusedKernels, hasWeightKernels, loadAddon, type NativeAddon } from './addon';
import { NativeKernelError } from './errors';
import { makeFrozenKernels, makeNativeFrozenStore } from './frozen-kernels';
import { makeFusedKernels, makeGather } from './fused-kernels';
import { makeBatchMatMul, makeFusedMatMul } from './kernels';
import { cpuMemory, wasmMemory, type TensorMemory } from './memory';

export { NativeKernelError } from './errors';

export type NativeBackendName = 'wasm' | 'cpu';

export interface NativeKernelOptions {
  /** BLAS threads; default: the machine's physical cores (within what this process may use). */
  readonly threads?: number;
  /** Restore the backend's own kernels (for runs and tests without the addon). */
  readonly disabled?: boolean;
  /** An explicit lorasmith_native.node, e.g. from a packaged app's resources. */
  readonly addonPath?: string;
  /** Register the gather and fused kernels too (default true); false keeps only the matMul ones (benchmarks). */
  readonly fused?: boolean;
  /**
   * Keep frozen base weights in the addon's store, outside the tensors' heap (default true); false leaves them
   * float32 tfjs tensors (benchmarks and tests of the plain path).
   */
  readonly frozenStore?: boolean;
  /** How the store keeps frozen weights when a load asks for nothing: the file's precision (default), bf16, q8_0, q4_0. */
  readonly basePrecision?: BasePrecision;
}

export interface NativeKernelStatus {
  readonly active: boolean;
  /** One line for logs and the UI: which kernels run, on what, or why the native ones do not. */
  readonly detail: string;
  /** Kernel names now served natively on this backend (empty when inactive). */
  readonly kernels: readonly string[];
  readonly threads: number;
}

const NATIVE_KERNELS = [tf.BatchMatMul, tf._FusedMatMul] as const;

/** The backend's own kernel configs, kept so unregistering restores them. Key: `${backend}/${kernel}`. */
const originals = new Map<string, tf.KernelConfig>();
/** Kernels this module added that the backend never had (the fused ones), per backend. */
const added = new Map<NativeBackendName, string[]>();
const statuses = new Map<NativeBackendName, NativeKernelStatus>();

const memoryOf: Record<NativeBackendName, TensorMemory> = { wasm: wasmMemory, cpu: cpuMemory };

/** Physical cores, capped by what this process may run on (containers, affinity). */
export function defaultThreads(addon: Pick<NativeAddon, 'physicalCores'>): number {
  return Math.max(1, Math.min(addon.physicalCores(), availableParallelism()));
}

/**
 * Options from environment variables, for the host or CLI to pass in (the engine itself never reads the
 * environment): LORASMITH_NATIVE=0|off|false disables, LORASMITH_NATIVE_THREADS=n sets the thread count,
 * LORASMITH_FROZEN_STORE=0|off|false keeps frozen weights as tensors, LORASMITH_BASE_PRECISION=stored|bf16|q8_0|q4_0
 * sets how the store keeps them.
 */
export function nativeOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): NativeKernelOptions {
  const off = (value: string | undefined) => ['0', 'off', 'false'].includes(value?.trim().toLowerCase() ?? '');
  const threadsText = env.LORASMITH_NATIVE_THREADS?.trim();
  const threads = threadsText ? Number(threadsText) : undefined;
  const precision = env.LORASMITH_BASE_PRECISION?.trim().toLowerCase();
  let basePrecision: BasePrecision | undefined;
  if (precision) {
    if (!isBasePrecision(precision)) {
      throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `LORASMITH_BASE_PRECISION must be one of ${BASE_PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`);
    }
    basePrecision = precision;
  }
  return {
    ...(off(env.LORASMITH_NATIVE) ? { disabled: true } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(off(env.LORASMITH_FROZEN_STORE) ? { frozenStore: false } : {}),
    ...(basePrecision ? { basePrecision } : {}),
  };
}

function assertBackendName(backendName: string): asserts backendName is NativeBackendName {
  if (backendName !== 'wasm' && backendName !== 'cpu') {
    throw new NativeKernelError('NATIVE_UNSUPPORTED_BACKEND',
      `native kernels serve the wasm and cpu backends, not ${JSON.stringify(backendName)}`);
  }
}

function plainKernelsDetail(backendName: NativeBackendName, why: string): string {
  return `${why}; ${NATIVE_KERNELS.join(', ')} use the ${backendName} backend's own kernels`;
}

/** Puts the backend's own BatchMatMul, _FusedMatMul and GatherV2 back and removes the fused kernels. */
export function unregisterNativeKernels(backendName: NativeBackendName): void {
  assertBackendName(backendName);
  for (const kernelName of [...NATIVE_KERNELS, tf.GatherV2]) {
    const original = originals.get(`${backendName}/${kernelName}`);
    if (!original) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel(original);
    originals.delete(`${backendName}/${kernelName}`);
  }
  for (const kernelName of added.get(backendName) ?? []) tf.unregisterKernel(kernelName, backendName);
  added.delete(backendName);
  unregisterFrozenStore(backendName);
  statuses.delete(backendName);
}

/** What registerNativeKernels last did for this backend. */
export function nativeKernelStatus(backendName: NativeBackendName): NativeKernelStatus {
  return statuses.get(backendName) ??
    { active: false, detail: plainKernelsDetail(backendName, 'native kernels not registered'), kernels: [], threads: 0 };
}

/**
 * Registers the native matMul kernels for `backendName` (whose package must already be imported, so its own
 * kernels exist to fall back on). Safe to call again: it re-registers with the new options.
 */
export function registerNativeKernels(backendName: NativeBackendName, options: NativeKernelOptions = {}): NativeKernelStatus {
  assertBackendName(backendName);
  unregisterNativeKernels(backendName);
  const status = tryRegister(backendName, options);
  statuses.set(backendName, status);
  return status;
}

function tryRegister(backendName: NativeBackendName, options: NativeKernelOptions): NativeKernelStatus {
  const inactive = (why: string): NativeKernelStatus =>
    ({ active: false, detail: plainKernelsDetail(backendName, why), kernels: [], threads: 0 });
  if (options.disabled) return inactive('native kernels disabled');
  const load = loadAddon(options.addonPath);
  if (!load.ok) return inactive(load.reason);
  const ownKernels = NATIVE_KERNELS.map((name) => tf.getKernel(name, backendName));
  if (ownKernels.some((config) => config === undefined)) {
    return inactive(`the ${backendName} backend's kernels are not registered (import its package first)`);
  }
  const threads = options.threads ?? defaultThreads(load.addon);
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw new NativeKernelError('NATIVE_BAD_THREADS', `native threads must be an integer from 1 to 1024, got ${threads}`);
  }
  load.addon.setThreads(threads);
  const memory = memoryOf[backendName];
  for (const original of ownKernels as tf.KernelConfig[]) {
    const kernelFunc = original.kernelName === tf.BatchMatMul
      ? makeBatchMatMul(load.addon, memory, backendName, original.kernelFunc)
      : makeFusedMatMul(load.addon, memory, backendName, original.kernelFunc);
    originals.set(`${backendName}/${original.kernelName}`, original);
    tf.unregisterKernel(original.kernelName, backendName);
    // setupFunc stays the original's so the fallback path is initialised when the backend starts after this.
    tf.registerKernel({ ...original, kernelFunc });
  }
  const kernels: string[] = [...NATIVE_KERNELS];
  const gather = tf.getKernel(tf.GatherV2, backendName);
  if (options.fused !== false && hasFusedKernels(load.addon) && gather) {
    originals.set(`${backendName}/${tf.GatherV2}`, gather);
    tf.unregisterKernel(tf.GatherV2, backendName);
    tf.registerKernel({ ...gather, kernelFunc: makeGather(load.addon, memory, gather.kernelFunc) });
    const fused = makeFusedKernels(load.addon, memory);
    for (const [kernelName, kernelFunc] of fused) tf.registerKernel({ kernelName, backendName, kernelFunc });
    added.set(backendName, [...fused.keys()]);
    kernels.push(tf.GatherV2, ...fused.keys());
  }
  let store = '';
  if (options.frozenStore !== false && hasWeightKernels(load.addon)) {
    const frozen = makeFrozenKernels(load.addon, memory);
    for (const [kernelName, kernelFunc] of frozen) tf.registerKernel({ kernelName, backendName, kernelFunc });
    added.set(backendName, [...(added.get(backendName) ?? []), ...frozen.keys()]);
    kernels.push(...frozen.keys());
    const frozenStore = makeNativeFrozenStore(load.addon, options.basePrecision ?? 'stored');
    registerFrozenStore(backendName, frozenStore);
    store = `; frozen weights in the ${frozenStore.detail}`;
  }
  const { blas, config } = load.addon.info();
  const served = kernels.length > NATIVE_KERNELS.length
    ? `${NATIVE_KERNELS.join(', ')}, ${tf.GatherV2} and fused attention, rotary, SwiGLU, RMSNorm, cross-entropy`
    : options.fused === false ? NATIVE_KERNELS.join(', ')
      : `${NATIVE_KERNELS.join(', ')} (no fused kernels: this addon predates them; \`npm run build:native\`)`;
  return {
    active: true,
    detail: `native sgemm (${blas === 'OpenBLAS' ? config.split(' ').slice(0, 2).join(' ') : blas}, ${threads} ` +
      `thread${threads === 1 ? '' : 's'}) for ${served} on ${backendName}${store}`,
    kernels,
    threads,
  };
}
