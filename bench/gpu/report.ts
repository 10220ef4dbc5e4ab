/**
 * The GPU check's results section (Markdown, in bench/results/<name>.md's style) from the JSON files run.sh leaves
 * in one folder: machine.json (nvidia-smi's name and driver), adapter.json, ops-webgpu.json, greedy-webgpu.json, dispatches.json,
 * step-webgpu.json, step-torch.json, profile.json, handoff.json (handoff_check.py's), status.json (each step's exit status and the
 * last line it printed on error).
 * What is missing is said, with why where run.sh recorded it; nothing is filled in.
 */
import { join } from 'node:path';
import type { CheckReport } from '../../test/engine/backend/op-checks';
import type { DispatchCounts } from './dispatches';
import type { ProfileReport } from './profile';
import type { StepReport } from './step';

interface Machine { gpu?: string; driver?: string; torch?: string; cuda?: string; date?: string; commit?: string }
interface Adapter { adapter?: Record<string, unknown> | null; limits?: Record<string, number> }
interface Ops { backend?: string; kernels?: string; checks?: CheckReport[] }
interface TorchStep { shape?: string; device?: string; name?: string; torch?: string; medianStepMs?: number; stepMs?: number[]; losses?: number[]; peakBytes?: number }
type Status = Record<string, { status: number; last?: string }>;
interface Greedy { backend?: string; models?: { model: string; cases: { passed: boolean }[] }[] }
interface Handoff {
  status?: string;
  problems?: string[];
  history?: { steps: number; worst: { loss: number; grad_norm_rel: number; eval_loss: number } };
  logits?: { device: string; engine_vs_peft_same_adapter: number; peft_trained_vs_engine_trained: number; adapter_effect: number };
  tokens?: { rows: number; encoded_otherwise: number };
  machine?: { torch?: string; transformers?: string; peft?: string; accelerate?: string; devices?: string[] };
}
interface Dispatches { shape?: string; composed?: DispatchCounts; fused?: DispatchCounts }

/** Goals from the issue: step ≥ 0.25× PyTorch CUDA eager fp32 (stretch 0.5×), decode ≥ 100 tokens/s. */
const STEP_GOAL = 0.25;
const STEP_STRETCH = 0.5;
const DECODE_GOAL = 100;

function readJson<T>(dir: string, name: string, read: (path: string) => string): T | null {
  try {
    return JSON.parse(read(join(dir, name))) as T;
  } catch {
    return null;
  }
}

const fixed = (value: number | undefined, digits = 0): string => (typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '—');

function why(status: Status | null, step: string): string {
  const s = status?.[step];
  if (!s) return 'not run';
  if (s.status === 0) return 'ran, but wrote no result';
  return `failed (exit ${s.status}${s.status === 124 ? ': timed out' : ''})${s.last ? `: ${s.last}` : ''}`;
}

function opsLine(ops: Ops | null, status: Status | null): string {
  if (!ops?.checks) return `Op checks on webgpu against float64: ${why(status, 'ops')}.`;
  const run = ops.checks.filter((c) => c.outcomes !== null);
  const failed = run.filter((c) => !c.passed);
  const worst = Math.max(...run.flatMap((c) => (c.outcomes ?? []).map((o) => o.error / o.tolerance)));
  return `Op checks on webgpu against float64 (values and finite-difference gradients; ${ops.kernels ?? ''}): ` +
    `${run.length - failed.length} of ${run.length} passed${failed.length > 0 ? ` (failed: ${failed.map((c) => c.name).join('; ')})` : ''}; ` +
    `the worst error was ${fixed(worst * 100)}% of its tolerance.`;
}

function greedyLine(g: Greedy | null, status: Status | null): string {
  if (!g?.models) return `Upstream greedy sequences on webgpu: ${why(status, 'greedy')}.`;
  const each = g.models.map((m) => `${m.cases.filter((c) => c.passed).length} of ${m.cases.length} for ${m.model}`);
  return `Upstream greedy sequences (the conformance suite's) on ${g.backend ?? 'webgpu'}: ${each.join(', ')} reproduced token for token.`;
}

function dispatchLine(d: Dispatches | null, status: Status | null): string {
  if (!d?.composed || !d.fused) return `Dispatches per step: ${why(status, 'dispatches')}.`;
  return `Compute dispatches (the ${d.shape ?? ''} shape, 2 layers): ${d.fused.step} per LoRA step and ${d.fused.token} per decoded ` +
    `token with the fused kernels and GPU-held weights, against ${d.composed.step} and ${d.composed.token} with tfjs's composed ops.`;
}

/** What bounds a step: the GPU's kernels where they take most of its wall time, else the CPU's dispatching. */
function bound(wallMs: number, kernelMs: number | string): string {
  if (typeof kernelMs !== 'number') return `GPU kernel time not measurable here (${kernelMs})`;
  return `${fixed(kernelMs)} ms in GPU kernels: ${kernelMs >= 0.8 * wallMs ? 'the kernels are the bound' : 'the CPU side (dispatching, submitting, reading back) is the bound'}`;
}

function profileLine(p: ProfileReport | null, status: Status | null): string {
  if (!p) return `Where the time goes: ${why(status, 'profile')}.`;
  const stepWall = Math.min(...p.stepWallMs);
  return `Where the time goes (tf.time, batch ${p.batch} × ${p.seq}): a LoRA step ${fixed(stepWall)} ms of wall time, ${bound(stepWall, p.stepKernelMs)}; ` +
    `a decoded token ${fixed(p.tokenWithReadMs, 1)} ms with its logits read back, ${fixed(p.tokenWithoutReadMs, 1)} ms without, ` +
    `${bound(p.tokenWithoutReadMs, p.tokenKernelMs)}.`;
}

const small = (value: number | undefined): string => (typeof value === 'number' && Number.isFinite(value) ? value.toExponential(1) : '—');

function handoffLine(h: Handoff | null, status: Status | null): string {
  const what = 'Hand-off to transformers + PEFT + accelerate (an exported run\'s train.py against the engine on the tiny llama, float32)';
  if (!h?.status) return `${what}: ${why(status, 'handoff')}.`;
  if (!h.history || !h.logits) return `${what}: ${h.status}.`;
  const m = h.machine ?? {};
  const ran = `train.py ran under accelerate on ${m.devices?.[0] ?? h.logits.device} with torch ${m.torch ?? '?'}, transformers ${m.transformers ?? '?'}, ` +
    `PEFT ${m.peft ?? '?'} and accelerate ${m.accelerate ?? '?'}`;
  const numbers = `over ${h.history.steps} steps the losses differ by at most ${small(h.history.worst.loss)}, the gradient norms by ` +
    `${small(h.history.worst.grad_norm_rel)} relative, the validation losses by ${small(h.history.worst.eval_loss)}; the engine's adapter gives ` +
    `the engine and transformers + PEFT logits ${small(h.logits.engine_vs_peft_same_adapter)} apart, and the two trained adapters give logits ` +
    `${small(h.logits.peft_trained_vs_engine_trained)} apart (the adapter itself moves them by ${small(h.logits.adapter_effect)})` +
    `${h.tokens ? `; transformers' tokenizer encodes ${h.tokens.rows - h.tokens.encoded_otherwise} of the ${h.tokens.rows} rows as the export does` : ''}`;
  const verdict = h.status === 'agree' ? 'they agree' : `they differ: ${(h.problems ?? []).join('; ')}`;
  return `${what}: ${verdict}. ${ran}; ${numbers}.`;
}

export function renderReport(dir: string, read: (path: string) => string): string {
  const machine = readJson<Machine>(dir, 'machine.json', read);
  const adapter = readJson<Adapter>(dir, 'adapter.json', read);
  const ops = readJson<Ops>(dir, 'ops-webgpu.json', read);
  const greedy = readJson<Greedy>(dir, 'greedy-webgpu.json', read);
  const dispatches = readJson<Dispatches>(dir, 'dispatches.json', read);
  const ours = readJson<StepReport & { kernels?: string }>(dir, 'step-webgpu.json', read);
  const torch = readJson<TorchStep>(dir, 'step-torch.json', read);
  const status = readJson<Status>(dir, 'status.json', read);
  const handoff = readJson<Handoff>(dir, 'handoff.json', read);
  const profile = readJson<ProfileReport>(dir, 'profile.json', read);
  const a = adapter?.adapter;
  const lines = [
    `## GPU: ${machine?.gpu ?? 'unknown GPU'}`, '',
    `Machine: ${machine?.gpu ?? 'unknown'} (driver ${machine?.driver ?? 'unknown'}), run ${machine?.date ?? 'on an unknown date'}` +
      `${machine?.commit ? ` from ${machine.commit}` : ''}. Dawn's adapter: ` +
      `${a ? [a.vendor, a.architecture, a.description].filter(Boolean).join(' ') : why(status, 'adapter')}` +
      `${adapter?.limits ? `, max storage binding ${fixed((adapter.limits.maxStorageBufferBindingSize ?? NaN) / 2 ** 20)} MiB` : ''}.`,
    '',
    opsLine(ops, status),
    '',
    greedyLine(greedy, status),
    '',
    dispatchLine(dispatches, status),
    '',
  ];
  const dims = ours?.dims;
  const shapeName = ours?.shape ?? torch?.shape ?? 'qwen2.5-0.5b';
  const shape = dims
    ? `${shapeName === 'qwen2.5-0.5b' ? 'Qwen2.5-0.5B\'s shape' : `the ${shapeName} shape`} (hidden ${dims.hidden}, ${dims.layers} layers, ` +
      `${dims.heads}/${dims.kvHeads} heads, MLP ${dims.mlp}, vocabulary ${dims.vocab}, tied, q/k/v bias; random BF16 weights), ` +
      `LoRA r=${dims.rank} alpha=${dims.alpha} on all seven linear kinds, batch ${dims.batch} × ${dims.seq}, AdamW`
    : `the ${shapeName} shape`;
  lines.push(`LoRA training step on ${shape}:`, '', '| Run | median ms per step | tokens/s | first step ms | losses |', '|---|---:|---:|---:|---|');
  if (ours) {
    lines.push(`| lorasmith, webgpu | ${fixed(ours.medianStepMs)} | ${fixed(ours.trainTokensPerSecond)} | ` +
      `${fixed(ours.firstStepMs)} | ${ours.losses.map((l) => l.toFixed(3)).join(', ')} |`);
  } else lines.push(`| lorasmith, webgpu | ${why(status, 'step')} | | | |`);
  if (torch?.medianStepMs !== undefined) {
    const tokens = dims ? dims.batch * dims.seq : NaN;
    lines.push(`| PyTorch ${torch.torch ?? ''} ${torch.device ?? ''} eager fp32 (no TF32), same shapes | ${fixed(torch.medianStepMs)} | ` +
      `${fixed((tokens * 1000) / torch.medianStepMs)} | | ${(torch.losses ?? []).map((l) => l.toFixed(3)).join(', ')} |`);
  } else lines.push(`| PyTorch CUDA eager fp32 | ${why(status, 'torch')} | | | |`);
  lines.push('');
  if (ours?.kernels) lines.push(`lorasmith's kernels: ${ours.kernels}.`, '');
  // The issue's goals are set at the real shape only.
  const real = shapeName === 'qwen2.5-0.5b';
  if (ours && torch?.medianStepMs !== undefined) {
    const ratio = torch.medianStepMs / ours.medianStepMs;
    lines.push(`Speed against PyTorch: ${ratio.toFixed(2)}×` + (real ? ` (goal ≥ ${STEP_GOAL}×, stretch ${STEP_STRETCH}×): ` +
      `${ratio >= STEP_STRETCH ? 'stretch goal met' : ratio >= STEP_GOAL ? 'goal met' : 'goal not met'}.` : '.'));
  }
  if (ours) {
    const d = ours.decode;
    lines.push(`Greedy decoding (KV cache, batch 1, ${d.promptTokens}-token prompt, ${d.newTokens} new tokens): ` +
      `${fixed(d.decodeTokensPerSecond, 1)} tokens/s in the decode loop, ${fixed(d.tokensPerSecond, 1)} over the whole call` +
      `${real ? ` (goal ≥ ${DECODE_GOAL}: ${d.decodeTokensPerSecond >= DECODE_GOAL ? 'met' : 'not met'})` : ''}. Model load ${fixed(ours.loadSeconds, 1)} s.`);
  } else lines.push(`Greedy decoding: ${why(status, 'step')}.`);
  lines.push('', profileLine(profile, status), '', handoffLine(handoff, status), '');
  return lines.join('\n');
}
