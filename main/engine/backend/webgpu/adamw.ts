/**
 * AdamW's update of one variable on webgpu in three dispatches (m', v', then p' from them) where tfjs runs about
 * fourteen elementwise ops; at a LoRA on all seven linear kinds of a 24-layer model that is 336 variables a step.
 * The formulas are train/optimizer.ts's (torch.optim.AdamW's):
 *   m' = β1·m + (1−β1)·g;  v' = β2·v + (1−β2)·g²;  p' = p·(1 − lr·wd) − lr·(m'/c1) / (sqrt(v'/c2) + ε)
 */
import type * as tf from '@tensorflow/tfjs-core';
import { ADAMW_KERNEL, type AdamWStep } from '../fused-ops';
import { FLAT_WORKGROUP, flatWorkgroups, runProgram, sizeOf, type KernelArgs } from './program';

// 1 − β and 1 − lr·wd are computed in float64 here, as the composed path does: in float32, 1 − 0.999 is off by 1e-5.
const FIELDS = 'count : i32, lr : f32, beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, epsilon : f32, decay : f32, ' +
  'correction1 : f32, correction2 : f32,';

function adamW({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { p, g, m, v } = inputs as Record<'p' | 'g' | 'm' | 'v', tf.TensorInfo>;
  const a = attrs as unknown as AdamWStep;
  const count = sizeOf(p.shape);
  const uniforms = [
    { type: 'int32' as const, data: [count] },
    ...[a.lr, a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.epsilon, 1 - a.lr * a.weightDecay, a.correction1, a.correction2]
      .map((x) => ({ type: 'float32' as const, data: [x] })),
  ];
  const program = (key: string, names: string[], tensors: tf.TensorInfo[], expression: string): tf.TensorInfo => runProgram(backend, {
    key: `adamw_${key}`,
    inputs: names,
    outputShape: p.shape,
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(count),
    uniformFields: FIELDS,
    code: `
      fn main(index : i32) {
        if (index >= uniforms.count) { return; }
        setOutputAtIndex(index, ${expression});
      }`,
  }, tensors, 'float32', uniforms);
  const m2 = program('m', ['m', 'g'], [m, g], 'uniforms.beta1 * m[index] + uniforms.oneMinusBeta1 * g[index]');
  const v2 = program('v', ['v', 'g'], [v, g], 'uniforms.beta2 * v[index] + uniforms.oneMinusBeta2 * (g[index] * g[index])');
  const p2 = program('p', ['p', 'mNew', 'vNew'], [p, m2, v2],
    'p[index] * uniforms.decay - uniforms.lr * ((mNew[index] / uniforms.correction1) / ' +
    '(sqrt(vNew[index] / uniforms.correction2) + uniforms.epsilon))');
  return [m2, v2, p2];
}

export const ADAMW_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [ADAMW_KERNEL, adamW as unknown as tf.KernelFunc],
]);
