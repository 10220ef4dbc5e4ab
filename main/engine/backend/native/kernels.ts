/**
 * tfjs kernel functions for BatchMatMul and _FusedMatMul that run the product through the addon's sgemm on the
 * tensors' own memory. Anything they do not handle (non-float32 operands, memory they cannot see) goes to the
 * backend's original kernel, so registering them never narrows what the backend can do.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './addon';
import { NativeKernelError } from './errors';
import type { TensorMemory } from './memory';
import { planMatMul, type MatMulPlan } from './plan';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Runs every sgemm call of `plan`; a, b, c are whole-tensor views. */
export function runPlan(addon: NativeAddon, plan: MatMulPlan, a: Float32Array, b: Float32Array, c: Float32Array): void {
  const { m, n, k, transposeA, transposeB } = plan;
  for (const call of plan.calls) {
    addon.sgemm(transposeA, transposeB, call.batch, m, n, k,
      call.offsetA === 0 ? a : a.subarray(call.offsetA), call.strideA,
      call.offsetB === 0 ? b : b.subarray(call.offsetB), call.strideB,
      call.offsetC === 0 ? c : c.subarray(call.offsetC), call.strideC);
  }
}

/**
 * Rows of op(a) up to which a product stays with wasm's own kernel. Token-by-token decoding multiplies one row by
 * each weight (and one query row by the keys): there sgemm's per-call and thread overhead outweighs its speed.
 * Measured on the starter model, decode with every product native: 270 tokens/s on 1 thread, 205 on 2, against
 * 390 on XNNPACK alone; with these products left to XNNPACK all three are within noise of each other.
 */
export const WASM_DECODE_ROWS = 4;

function prefersBackendKernel(backendName: string, plan: MatMulPlan): boolean {
  return backendName === 'wasm' && plan.m <= WASM_DECODE_ROWS;
}

/** The product op(a)·op(b) as a new float32 output, or null when the operands are not this kernel's to handle. */
function nativeProduct(
  addon: NativeAddon, memory: TensorMemory, backendName: string, backend: unknown,
  a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean,
): tf.TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const plan = planMatMul(a.shape, b.shape, transposeA, transposeB);
  if (prefersBackendKernel(backendName, plan)) return null;
  // Output first: on wasm, allocating can grow the heap and detach views taken earlier.
  const out = memory.allocate(backend, plan.outShape);
  const viewA = memory.view(backend, a);
  const viewB = memory.view(backend, b);
  if (!viewA || !viewB) {
    memory.release(backend, out.info);
    return null;
  }
  runPlan(addon, plan, viewA, viewB, out.view);
  return out.info;
}

export function makeBatchMatMul(
  addon: NativeAddon, memory: TensorMemory, backendName: string, original: tf.KernelFunc,
): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const attrs = args.attrs as unknown as tf.BatchMatMulAttrs;
    const out = nativeProduct(addon, memory, backendName, args.backend, a, b, attrs.transposeA, attrs.transposeB);
    return out ?? original(args);
  };
}

/** Kernel name and extra inputs/attrs that apply each fusable activation to `x`. */
function activationKernel(
  attrs: tf._FusedMatMulAttrs, preluWeights: tf.TensorInfo | undefined,
): { name: string; inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap } | null {
  switch (attrs.activation) {
    case 'linear': return null;
    case 'relu': return { name: tf.Relu, inputs: {}, attrs: {} };
    case 'relu6': return { name: tf.Relu6, inputs: {}, attrs: {} };
    case 'elu': return { name: tf.Elu, inputs: {}, attrs: {} };
    case 'sigmoid': return { name: tf.Sigmoid, inputs: {}, attrs: {} };
    case 'leakyrelu': return { name: tf.LeakyRelu, inputs: {}, attrs: { alpha: attrs.leakyreluAlpha ?? 0.2 } };
    case 'prelu':
      if (!preluWeights) throw new NativeKernelError('NATIVE_UNSUPPORTED_ACTIVATION', 'prelu activation needs preluActivationWeights');
      return { name: tf.Prelu, inputs: { alpha: preluWeights }, attrs: {} };
    default:
      throw new NativeKernelError('NATIVE_UNSUPPORTED_ACTIVATION',
        `fused matMul activation ${String(attrs.activation)} is not one of linear, relu, relu6, elu, sigmoid, leakyrelu, prelu`);
  }
}

/** Runs the backend's own kernel `name`; its output belongs to the caller. */
function runBackendKernel(
  name: string, backendName: string, backend: unknown, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap,
): tf.TensorInfo {
  const config = tf.getKernel(name, backendName);
  if (!config) throw new Error(`backend ${backendName} has no ${name} kernel for the fused matMul epilogue`);
  const result = config.kernelFunc({ inputs, backend: backend as tf.KernelBackend, attrs });
  return Array.isArray(result) ? (result[0] as tf.TensorInfo) : result;
}

/**
 * _FusedMatMul: the native product, then bias and activation with the backend's own Add and activation kernels
 * (elementwise, memory-bound: the product is where the time goes).
 */
export function makeFusedMatMul(
  addon: NativeAddon, memory: TensorMemory, backendName: string, original: tf.KernelFunc,
): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as {
      a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo;
    };
    const attrs = args.attrs as unknown as tf._FusedMatMulAttrs;
    const activation = activationKernel(attrs, preluActivationWeights);
    const product = nativeProduct(addon, memory, backendName, args.backend, a, b, attrs.transposeA, attrs.transposeB);
    if (!product) return original(args);
    let out = product;
    const steps: { name: string; inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap }[] = [];
    if (bias) steps.push({ name: tf.Add, inputs: { b: bias }, attrs: {} });
    if (activation) steps.push(activation);
    for (const step of steps) {
      const xName = step.name === tf.Add ? 'a' : 'x';
      const next = runBackendKernel(step.name, backendName, args.backend, { [xName]: out, ...step.inputs }, step.attrs);
      memory.release(args.backend, out);
      out = next;
    }
    return out;
  };
}
