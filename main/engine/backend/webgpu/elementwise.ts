/**
 * Rotary embedding and SwiGLU on webgpu: one thread per output element, each a single dispatch where tfjs runs
 * split, concat, two multiplies and an add (rotary) or sigmoid and two multiplies (SwiGLU), and their gradients.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS } from '../fused-ops';
import { FLAT_WORKGROUP, flatWorkgroups, runProgram, sizeOf, type KernelArgs } from './program';

/** x [..., T, D], cos and signed sin [T, D] -> x·cos + [x2, x1]·sin (see fused-ops' fusedRotary). */
function rotary({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x, cos, sin } = inputs as Record<'x' | 'cos' | 'sin', tf.TensorInfo>;
  const [t = 0, d = 0] = cos.shape;
  const count = sizeOf(x.shape);
  return runProgram(backend, {
    key: 'rotary',
    inputs: ['x', 'cosTable', 'sinTable'], // not cos and sin: those name WGSL built-ins
    outputShape: x.shape,
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(count),
    uniformFields: 'count : i32, positions : i32, dim : i32,',
    code: `
      fn main(index : i32) {
        if (index >= uniforms.count) { return; }
        let dim = uniforms.dim;
        let half = dim / 2;
        let j = index % dim;
        let table = ((index / dim) % uniforms.positions) * dim + j;
        let partner = select(index - half, index + half, j < half);
        setOutputAtIndex(index, x[index] * cosTable[table] + x[partner] * sinTable[table]);
      }`,
  }, [x, cos, sin], 'float32', [
    { type: 'int32', data: [count] }, { type: 'int32', data: [t] }, { type: 'int32', data: [d] },
  ]);
}

const SIGMOID = 'fn sigmoid(g : f32) -> f32 { return 1.0 / (1.0 + exp(-g)); }';

/** One elementwise program over gate, up (and dy): `expression` is the output in terms of g, u, s = sigmoid(g), dy. */
function gated(backend: unknown, key: string, inputs: tf.TensorInfo[], expression: string): tf.TensorInfo {
  const count = sizeOf((inputs[0] as tf.TensorInfo).shape);
  const names = ['gate', 'up', 'dy'].slice(0, inputs.length);
  return runProgram(backend, {
    key,
    inputs: names,
    outputShape: (inputs[0] as tf.TensorInfo).shape,
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(count),
    uniformFields: 'count : i32,',
    code: `
      ${SIGMOID}
      fn main(index : i32) {
        if (index >= uniforms.count) { return; }
        let g = gate[index];
        let u = up[index];
        let s = sigmoid(g);
        ${names.includes('dy') ? 'let grad = dy[index];' : ''}
        setOutputAtIndex(index, ${expression});
      }`,
  }, inputs, 'float32', [{ type: 'int32', data: [count] }]);
}

/** silu(gate)·up */
function swiglu({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { gate, up } = inputs as Record<'gate' | 'up', tf.TensorInfo>;
  return gated(backend, 'swiglu', [gate, up], 'g * s * u');
}

/** dgate = dy·up·silu'(gate) with silu'(g) = s·(1 + g·(1 − s)); dup = dy·silu(gate). */
function swigluGrad({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { gate, up, dy } = inputs as Record<'gate' | 'up' | 'dy', tf.TensorInfo>;
  return [
    gated(backend, 'swiglu_dgate', [gate, up, dy], 'grad * u * s * (1.0 + g * (1.0 - s))'),
    gated(backend, 'swiglu_dup', [gate, up, dy], 'grad * g * s'),
  ];
}

export const ELEMENTWISE_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [FUSED_KERNELS.rotary, rotary as tf.KernelFunc],
  [FUSED_KERNELS.swiglu, swiglu as tf.KernelFunc],
  [FUSED_KERNELS.swigluGrad, swigluGrad as unknown as tf.KernelFunc],
]);
