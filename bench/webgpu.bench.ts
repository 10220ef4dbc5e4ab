/**
 * The fused WGSL kernels on the WebGPU adapter Dawn finds here: on the development machine and in CI that is Mesa's
 * lavapipe, a CPU underneath, so this section holds no timings. It gives each op check's worst error against
 * float64 as a share of its tolerance (test/engine/backend/op-checks.ts) and the compute dispatches per LoRA step
 * and per decoded token with the kernels and without (bench/gpu/dispatches.ts), which do not depend on the GPU.
 * Timings on a real GPU come from the GPU check (bench/gpu/, README "The GPU check").
 */
import { detectBackends, initBackend } from '../main/engine/backend/index';
import { runOpChecks } from '../test/engine/backend/op-checks';
import { dispatchCounts } from './gpu/dispatches';

export async function run(): Promise<string> {
  const lines = ['## WebGPU kernels: correctness and dispatch counts (no timings)', ''];
  const webgpu = (await detectBackends()).find((b) => b.name === 'webgpu');
  if (!webgpu?.probe.usable) return [...lines, `webgpu is not usable here: ${webgpu?.probe.detail ?? 'not probed'}.`, ''].join('\n');
  const info = await initBackend('webgpu');
  lines.push(`${webgpu.probe.detail}; ${info.matmulKernels}.`, '', '| Op check (values and finite-difference gradients against float64) | comparisons | worst error / tolerance |', '|---|---:|---:|');
  for (const check of await runOpChecks()) {
    if (!check.outcomes) continue;
    const worst = Math.max(...check.outcomes.map((o) => o.error / o.tolerance));
    lines.push(`| ${check.name} | ${check.outcomes.length} | ${(100 * worst).toFixed(1)}%${check.passed ? '' : ' (failed)'} |`);
  }
  const { composed, fused } = await dispatchCounts('tiny');
  lines.push('', 'Compute dispatches on the tiny Qwen2-shaped model (2 layers; LoRA on all seven linear kinds):', '',
    '| | per LoRA step | per decoded token |', '|---|---:|---:|',
    `| tfjs's composed ops, float32 weights | ${composed.step} | ${composed.token} |`,
    `| fused WGSL kernels, GPU-held BF16 weights | ${fused.step} | ${fused.token} |`, '');
  await initBackend('cpu');
  return lines.join('\n');
}
