/** What the handler and probe tests train the one-layer GPT-2 fixtures on, and with. */
import type { TrainingSettings } from '../../preload/contract';

/** `records` prompt/completion lines counting up ("Count 3:" -> " 4"), as JSONL. */
export function countingJsonl(records: number): string {
  return Array.from({ length: records }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` })).join('\n') + '\n';
}

/** LoRA rank 2 on c_attn, no dropout, no validation, no evaluation: a few quick steps; `overrides` for the rest. */
export function gpt2Settings(maxSteps: number, overrides: Partial<TrainingSettings> = {}): TrainingSettings {
  return {
    lora: { targetModules: ['c_attn'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
    maxSteps, learningRate: 1e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 32, valSplit: 0, seed: 1,
    scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
    ...overrides,
  };
}
