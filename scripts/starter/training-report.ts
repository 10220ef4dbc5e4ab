/**
 * Writes resources/starter/TRAINING.md from the training.json that train-starter.ts leaves beside the model.
 *   npx tsx scripts/starter/training-report.ts [model-dir]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StarterConfig } from './tiny-llama';

export interface TrainingRecord {
  seed: number;
  documents: { train: number; validation: number };
  tokens: { train: number; validation: number };
  parameters: number;
  config: Readonly<Record<string, number>> | StarterConfig;
  batch: number;
  seqLen: number;
  peakLr: number;
  warmupSteps: number;
  plannedSteps: number;
  steps: number;
  minutes: number;
  finalValidationLoss: number;
  backend: string;
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
| Optimizer | AdamW (beta 0.9/0.95, weight decay 0.1 on matrices), global-norm clip 1, peak lr ${r.peakLr}, ${r.warmupSteps} warmup steps then cosine to 10% over ${r.plannedSteps} planned steps |
| Seed | ${r.seed} (initialisation, batch order and validation windows all derive from it) |
| Run | ${r.steps} steps in ${r.minutes.toFixed(1)} minutes on the ${r.backend} backend with native sgemm, on 2 CPU cores shared with other work |
| Final validation loss | **${r.finalValidationLoss.toFixed(3)}** nats/token (perplexity ${Math.exp(r.finalValidationLoss).toFixed(1)}) |

| Step | Train loss (mean since last eval) | Validation loss | Minutes |
|---:|---:|---:|---:|
${rows.join('\n')}

${r.steps === r.plannedSteps
    ? `This run reached all ${r.steps} planned steps before its time cap; \`npm run train:starter\` uses these settings by default.`
    : `The run stopped at its time cap after ${r.steps} of ${r.plannedSteps} steps; pass \`--steps ${r.steps} --minutes 1000\` to reproduce it.`}
The pretraining loop is the script's own (scripts/starter/tiny-llama.ts forward pass, scripts/starter/adamw.ts,
a loss computed in plain loops), on tfjs-core with the engine's seeded Rng and native sgemm kernels: it was
written before the engine's llama model and training loop existed. The engine's llama loader reads the checkpoint
and gives the same logits (test/resources/starter-model.test.ts), and \`lorasmith train --full\` (the engine's
full fine-tuning) continues training it. Float sums in the threaded sgemm may differ in the last bits between
machines, so a rerun reproduces the schedule and losses closely, not bit for bit.
`;
}

if (process.argv[1]?.endsWith('training-report.ts')) {
  const dir = process.argv[2] ?? 'resources/starter';
  const record = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as TrainingRecord;
  writeFileSync(join(dir, 'TRAINING.md'), trainingMarkdown(record));
}
