/**
 * Writes resources/starter/TRAINING.md from the training.json that train-starter.ts leaves beside the model.
 *   npx tsx scripts/starter/training-report.ts [model-dir]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StarterConfig } from './starter-model';

export interface TrainingRecord {
  seed: number;
  corpus?: string;
  documents: { train: number; validation: number };
  tokens: { train: number; validation: number };
  parameters: number;
  config: Readonly<Record<string, number>> | StarterConfig;
  batch: number;
  seqLen: number;
  peakLr: number;
  /** AdamW's decoupled weight decay, applied to every weight by the engine's optimizer. */
  weightDecay?: number;
  warmupSteps: number;
  plannedSteps: number;
  steps: number;
  minutes: number;
  finalValidationLoss: number;
  backend: string;
  /** Which kernels served the matrix products (the engine's BackendInfo.matmulKernels). */
  matmulKernels?: string;
  history: { step: number; trainLoss: number; valLoss: number; minutes: number }[];
}

export function trainingMarkdown(r: TrainingRecord): string {
  const c = r.config as Readonly<Record<string, number>>;
  const rows = r.history.map((h) => `| ${h.step} | ${h.trainLoss.toFixed(3)} | ${h.valLoss.toFixed(3)} | ${h.minutes.toFixed(1)} |`);
  return `# How the starter model was trained

Produced by \`npm run train:starter\` (scripts/train-starter.ts) from scratch: corpus (see CORPUS.md),
byte-level BPE tokenizer (scripts/starter/bpe-trainer.ts), then pretraining with **every weight trainable**.

| | |
|---|---|
| Architecture | LlamaForCausalLM: ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads (${c.numKvHeads} key/value heads), MLP ${c.intermediateSize} (SiLU-gated), RMSNorm, RoPE theta ${c.ropeTheta}, tied embeddings |
| Parameters | ${r.parameters.toLocaleString('en-US')} (stored as F16: model.safetensors) |
| Vocabulary | ${c.vocabSize} byte-level BPE tokens: \`<\\|endoftext\\|>\` (0, BOS/EOS/pad), \`<\\|im_start\\|>\` (1), \`<\\|im_end\\|>\` (2), 256 bytes, merges |
| Context | ${r.seqLen} tokens |
| Corpus | ${r.documents.train} chapters for training (${r.tokens.train.toLocaleString('en-US')} tokens), every 40th chapter held out (${r.documents.validation} chapters, ${r.tokens.validation.toLocaleString('en-US')} tokens) |
| Batches | ${r.batch} random windows of ${r.seqLen} tokens (documents joined by \`<\\|endoftext\\|>\`) |
| Optimizer | The engine's AdamW (main/engine/train/optimizer.ts: beta 0.9/0.999, epsilon 1e-8, weight decay ${r.weightDecay ?? 0} on every weight), global-norm clip 1, peak lr ${r.peakLr}, ${r.warmupSteps} linear warmup steps then cosine to 0 over ${r.plannedSteps} planned steps (main/engine/train/schedule.ts) |
| Seed | ${r.seed} (initialisation, batch order and validation windows all derive from it) |
| Run | ${r.steps} steps in ${r.minutes.toFixed(1)} minutes on the ${r.backend} backend${r.matmulKernels ? ` (matmuls: ${r.matmulKernels})` : ''}, on 2 CPU cores shared with other work |
| Final validation loss | **${r.finalValidationLoss.toFixed(3)}** nats/token (perplexity ${Math.exp(r.finalValidationLoss).toFixed(1)}) |

| Step | Train loss (mean since last eval) | Validation loss | Minutes |
|---:|---:|---:|---:|
${rows.join('\n')}

${r.steps === r.plannedSteps
    ? `This run reached all ${r.steps} planned steps before its time cap; \`npm run train:starter\` uses these settings by default.`
    : `The run stopped at its time cap after ${r.steps} of ${r.plannedSteps} steps; pass \`--steps ${r.steps} --minutes 1000\` to reproduce it.`}
Training runs on the engine itself, in its full-training mode: the untrained model (seeded N(0, 0.02) init,
scripts/starter/starter-model.ts) is written as a Hugging Face folder with the engine's safetensors writer, loaded by
the engine's loader with every weight a Variable (\`loadModel(dir, { trainable: true })\`), and trained by the
engine's training loop (main/engine/train/loop.ts) on all of \`fullTrainableVariables(model)\` with masked
cross-entropy, the engine's AdamW and warmup + cosine schedule, the same code \`lorasmith train --full\` runs. The
training windows are drawn up front from the seed (one per batch row per step) and the loop's seeded shuffle orders
them; validation is the loop's own (token-weighted mean loss over ${4 * r.batch} fixed held-out windows). Float sums in the threaded
sgemm may differ in the last bits between machines, so a rerun reproduces the schedule and losses closely, not bit
for bit.
`;
}

if (process.argv[1]?.endsWith('training-report.ts')) {
  const dir = process.argv[2] ?? 'resources/starter';
  const record = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as TrainingRecord;
  writeFileSync(join(dir, 'TRAINING.md'), trainingMarkdown(record));
}
