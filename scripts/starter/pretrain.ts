/**
 * The starter model's pretraining, on the engine itself: the untrained model is written as a Hugging Face folder
 * (starter-model.ts), loaded by the engine's loader with every weight a Variable (loadModel(dir, { trainable })),
 * and trained by the engine's training loop (train/loop.ts: its AdamW, warmup + cosine schedule, global-norm
 * clipping, masked cross-entropy and validation) with fullTrainableVariables, i.e. full fine-tuning from scratch.
 * The corpus is cut into random windows drawn from the seed; train-starter.ts parses the options and runs this.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Tokenizer } from '@huggingface/tokenizers';
import { initBackend, parseBackendPreference } from '../../main/engine/backend/index';
import { writeSafetensors, type WritableTensor } from '../../main/engine/io/safetensors';
import { loadModel } from '../../main/engine/models/registry';
import type { CausalLM } from '../../main/engine/models/types';
import { trainLoop, type TrainProgress } from '../../main/engine/train/loop';
import { Rng } from '../../main/engine/train/rng';
import type { TokenizedExample } from '../../main/engine/train/tokenize';
import { fullTrainableVariables } from '../../main/engine/train/trainable';
import { buildKjvCorpus, corpusDocuments } from './corpus';
import { hfConfigJson, weightShapes, writeInitialModel, type StarterConfig } from './starter-model';
import { trainStarterTokenizer, tokenizerConfigJson, END_OF_TEXT, IM_END, SPECIAL_TOKENS } from './tokenizer-files';
import { trainingMarkdown, type TrainingRecord } from './training-report';

export interface PretrainOptions {
  readonly outDir: string;
  readonly corpus?: string;
  readonly seed: number;
  readonly steps: number;
  readonly minutes: number;
  readonly batch: number;
  readonly seqLen: number;
  readonly lr: number;
  readonly weightDecay: number;
  readonly evalEvery: number;
  readonly backend: string;
  readonly threads: number;
}

/** Validation windows: 4 batches' worth, always the same ones (drawn from seed + 2) so evaluations compare. */
const VALIDATION_BATCHES = 4;

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
}

/** Token ids of the documents, each followed by <|endoftext|>. */
function encodeDocuments(tokenizer: Tokenizer, documents: readonly string[], eosId: number): Int32Array {
  const ids: number[] = [];
  for (const doc of documents) {
    for (const id of tokenizer.encode(doc).ids) ids.push(id);
    ids.push(eosId);
  }
  return Int32Array.from(ids);
}

/**
 * `count` random windows of seqLen + 1 tokens, every token a target: the loop's batches take inputs ids[0..T-1]
 * and next-token labels ids[1..T], so each window trains seqLen predictions (the last input has no target).
 */
export function randomWindows(tokens: Int32Array, count: number, seqLen: number, rng: Rng): TokenizedExample[] {
  const rows: TokenizedExample[] = [];
  const train = new Array<number>(seqLen + 1).fill(1);
  for (let i = 0; i < count; i++) {
    const start = Math.floor(rng.next() * (tokens.length - seqLen - 1));
    rows.push({ line: start, ids: Array.from(tokens.subarray(start, start + seqLen + 1)), train });
  }
  return rows;
}

/** The model's weights in checkpoint layout and order, as F16 (the tied head is model.embed_tokens.weight). */
function saveModel(model: CausalLM, config: StarterConfig, outDir: string, metadata: Record<string, string>): void {
  const tensors = new Map<string, WritableTensor>();
  tf.tidy(() => {
    const named = model.namedWeights();
    for (const [name, shape] of weightShapes(config)) {
      const t = named.get(name);
      if (!t) throw new Error(`the trained model has no weight '${name}'`);
      tensors.set(name, { dtype: 'F16', shape, data: t.dataSync() as Float32Array });
    }
  });
  writeSafetensors(join(outDir, 'model.safetensors'), tensors, { format: 'pt', ...metadata });
}

function writeTokenizerAndConfigs(outDir: string, trainDocs: readonly string[], config: StarterConfig): { tokenizer: Tokenizer; eosId: number; special: { bos: number; eos: number[]; pad: number } } {
  const tokenizerJson = trainStarterTokenizer(trainDocs, config.vocabSize);
  const tokenizerConfig = tokenizerConfigJson(config.maxPositions);
  writeFileSync(join(outDir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  writeFileSync(join(outDir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  const eosId = SPECIAL_TOKENS.indexOf(END_OF_TEXT);
  const special = { bos: eosId, eos: [eosId, SPECIAL_TOKENS.indexOf(IM_END)], pad: eosId };
  writeFileSync(join(outDir, 'generation_config.json'), JSON.stringify({
    bos_token_id: special.bos, eos_token_id: special.eos, pad_token_id: special.pad, max_length: config.maxPositions,
  }, null, 2) + '\n');
  return { tokenizer: new Tokenizer(tokenizerJson, tokenizerConfig), eosId, special };
}

export async function pretrainStarter(o: PretrainOptions): Promise<void> {
  const backend = await initBackend(parseBackendPreference(o.backend), { native: { threads: o.threads } });
  log(`backend ${backend.name}: ${backend.matmulKernels}`);
  const config: StarterConfig = {
    vocabSize: 4096, hiddenSize: 256, intermediateSize: 704, numLayers: 4, numHeads: 4, numKvHeads: 4,
    maxPositions: o.seqLen, rmsNormEps: 1e-5, ropeTheta: 10000,
  };
  const warmupSteps = Math.min(100, Math.floor(o.steps / 10));
  mkdirSync(o.outDir, { recursive: true });
  const corpusPath = o.corpus ?? buildKjvCorpus(join('.cache', 'starter'));
  const documents = corpusDocuments(readFileSync(corpusPath, 'utf8'));
  // Every 40th chapter is held out for validation.
  const trainDocs = documents.filter((_, i) => i % 40 !== 39);
  const valDocs = documents.filter((_, i) => i % 40 === 39);
  log(`corpus ${corpusPath}: ${documents.length} documents (${valDocs.length} held out)`);

  const { tokenizer, eosId, special } = writeTokenizerAndConfigs(o.outDir, trainDocs, config);
  const trainTokens = encodeDocuments(tokenizer, trainDocs, eosId);
  const valTokens = encodeDocuments(tokenizer, valDocs, eosId);
  log(`tokens: train ${trainTokens.length}, validation ${valTokens.length}`);

  // The untrained model as a Hugging Face folder, then the engine's loader with every weight trainable.
  const initDir = join(o.outDir, '.initial');
  writeInitialModel(initDir, config, special, o.seed);
  const model = await loadModel(initDir, { trainable: true });
  rmSync(initDir, { recursive: true, force: true });
  writeFileSync(join(o.outDir, 'config.json'), JSON.stringify(hfConfigJson(config, special), null, 2) + '\n');
  const variables = fullTrainableVariables(model);
  const params = [...variables.values()].reduce((n, v) => n + v.size, 0);

  // One window per batch row per step: the same draws (seed + 1) as a fresh random window each step.
  const trainRows = randomWindows(trainTokens, o.steps * o.batch, o.seqLen, new Rng(o.seed + 1));
  const valRows = randomWindows(valTokens, VALIDATION_BATCHES * o.batch, o.seqLen, new Rng(o.seed + 2));
  log(`model: ${params} parameters in ${variables.size} variables; batch ${o.batch} x ${o.seqLen}, lr ${o.lr}, up to ${o.steps} steps / ${o.minutes} min`);

  const started = Date.now();
  const controller = new AbortController();
  const history: TrainingRecord['history'] = [];
  let recent: number[] = [];
  const onProgress = (e: TrainProgress) => {
    if (e.kind === 'step') {
      recent.push(e.loss);
      if (e.step % 10 === 0 || e.step <= 5) log(`step ${e.step} loss ${e.loss.toFixed(4)} grad-norm ${e.gradNorm.toFixed(3)} lr ${e.lr.toExponential(2)} tensors ${tf.memory().numTensors}`);
      if (Date.now() - started > o.minutes * 60_000) controller.abort();
    } else if (e.kind === 'eval' && e.valLoss !== null) {
      const trainLoss = recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length);
      recent = [];
      const minutes = (Date.now() - started) / 60_000;
      history.push({ step: e.step, trainLoss, valLoss: e.valLoss, minutes });
      log(`eval step ${e.step}: train ${trainLoss.toFixed(4)} validation ${e.valLoss.toFixed(4)} (${minutes.toFixed(1)} min)`);
      // A checkpoint at every evaluation, so a run stopped early still leaves a model.
      saveModel(model, config, o.outDir, { step: String(e.step) });
    }
  };
  const result = await trainLoop({
    model, variables, trainRows, valRows, padId: eosId, signal: controller.signal, onProgress,
    hyperparameters: {
      maxSteps: o.steps, batchSize: o.batch, gradAccum: 1, learningRate: o.lr, scheduler: 'cosine', warmupSteps,
      weightDecay: o.weightDecay, maxGradNorm: 1, seed: o.seed, evalEvery: o.evalEvery, keepWeights: 'last',
    },
  });
  const minutes = (Date.now() - started) / 60_000;
  const last = history[history.length - 1];
  if (!last || last.step !== result.steps) {
    log(`stopped at step ${result.steps} (${result.status}); the model on disk is from step ${last?.step ?? 0}`);
  }
  const record: TrainingRecord = {
    seed: o.seed, corpus: corpusPath, documents: { train: trainDocs.length, validation: valDocs.length },
    tokens: { train: trainTokens.length, validation: valTokens.length }, parameters: params, config,
    batch: o.batch, seqLen: o.seqLen, peakLr: o.lr, weightDecay: o.weightDecay, warmupSteps, plannedSteps: o.steps,
    steps: last?.step ?? 0, minutes, finalValidationLoss: last?.valLoss ?? Number.NaN,
    backend: backend.name, matmulKernels: backend.matmulKernels, history,
  };
  writeFileSync(join(o.outDir, 'training.json'), JSON.stringify(record, null, 2) + '\n');
  writeFileSync(join(o.outDir, 'TRAINING.md'), trainingMarkdown(record));
  log(`done: ${record.steps} steps in ${minutes.toFixed(1)} min, validation loss ${record.finalValidationLoss.toFixed(4)}`);
  model.dispose();
}
