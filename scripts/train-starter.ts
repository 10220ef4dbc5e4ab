/**
 * `npm run train:starter`: builds resources/starter from scratch — corpus (Debian's public-domain KJV text),
 * byte-level BPE tokenizer, and a small Llama pretrained with every weight trainable — reproducibly from a seed.
 *
 *   npm run train:starter -- [--out resources/starter] [--corpus file.txt] [--seed 1234] [--steps 900]
 *                            [--minutes 35] [--batch 4] [--seq 256] [--lr 3e-3]
 *
 * Without --corpus the text is built in .cache/starter by buildKjvCorpus (apt-get download + the package's own
 * `bible` program). A checkpoint is written at every evaluation, so a run stopped early still leaves a model.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { registerNativeKernels } from '../main/engine/backend/native/index';
import { Tokenizer } from '@huggingface/tokenizers';
import { buildKjvCorpus, corpusDocuments } from './starter/corpus';
import { trainStarterTokenizer, tokenizerConfigJson, END_OF_TEXT, IM_END, SPECIAL_TOKENS } from './starter/tokenizer-files';
import { forward, forwardContext, hfConfigJson, initWeights, lossOf, weightShapes, type StarterConfig } from './starter/tiny-llama';
import { AdamW } from './starter/adamw';
import { writeSafetensors } from '../main/engine/io/safetensors';
import { Rng } from '../main/engine/train/rng';
import { registerGradients } from './starter/register-gradients';
import { trainingMarkdown } from './starter/training-report';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'resources/starter' },
    corpus: { type: 'string' },
    seed: { type: 'string', default: '1234' },
    steps: { type: 'string', default: '900' },
    minutes: { type: 'string', default: '35' },
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '256' },
    lr: { type: 'string', default: '3e-3' },
    'eval-every': { type: 'string', default: '50' },
    backend: { type: 'string', default: 'wasm' },
    threads: { type: 'string', default: '2' },
  },
});

const seed = Number(args.seed);
const maxSteps = Number(args.steps);
const budgetMs = Number(args.minutes) * 60_000;
const batch = Number(args.batch);
const seqLen = Number(args.seq);
const peakLr = Number(args.lr);
const evalEvery = Number(args['eval-every']);
const warmupSteps = Math.min(100, Math.floor(maxSteps / 10));

const config: StarterConfig = {
  vocabSize: 4096, hiddenSize: 256, intermediateSize: 704, numLayers: 4, numHeads: 4, numKvHeads: 4,
  maxPositions: seqLen, rmsNormEps: 1e-5, ropeTheta: 10000,
};

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

/** A batch of random windows: inputs [B, T] and next-token targets [B, T]. */
function sampleBatch(tokens: Int32Array, rng: Rng): { ids: tf.Tensor2D; targets: tf.Tensor2D } {
  const ids = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const start = Math.floor(rng.next() * (tokens.length - seqLen - 1));
    ids.set(tokens.subarray(start, start + seqLen), b * seqLen);
    targets.set(tokens.subarray(start + 1, start + seqLen + 1), b * seqLen);
  }
  return { ids: tf.tensor2d(ids, [batch, seqLen], 'int32'), targets: tf.tensor2d(targets, [batch, seqLen], 'int32') };
}

function learningRate(step: number): number {
  if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, maxSteps - warmupSteps));
  return peakLr * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

function saveModel(outDir: string, weights: Map<string, tf.Variable>, metadata: Record<string, string>): void {
  const tensors = new Map(weightShapes(config).map(([name, shape]) => [name, {
    dtype: 'F16' as const, shape, data: (weights.get(name) as tf.Variable).dataSync() as Float32Array,
  }]));
  writeSafetensors(join(outDir, 'model.safetensors'), tensors, { format: 'pt', ...metadata });
}

async function main(): Promise<void> {
  await registerGradients();
  await tf.setBackend(args.backend as string);
  log(registerNativeKernels(args.backend as 'wasm' | 'cpu', { threads: Number(args.threads) }).detail);
  const outDir = args.out as string;
  mkdirSync(outDir, { recursive: true });
  const corpusPath = args.corpus ?? buildKjvCorpus(join('.cache', 'starter'));
  const documents = corpusDocuments(readFileSync(corpusPath, 'utf8'));
  // Every 40th chapter is held out for validation.
  const trainDocs = documents.filter((_, i) => i % 40 !== 39);
  const valDocs = documents.filter((_, i) => i % 40 === 39);
  log(`corpus ${corpusPath}: ${documents.length} documents (${valDocs.length} held out)`);

  const tokenizerJson = trainStarterTokenizer(trainDocs, config.vocabSize);
  const tokenizerConfig = tokenizerConfigJson(seqLen);
  writeFileSync(join(outDir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  writeFileSync(join(outDir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  const eosId = SPECIAL_TOKENS.indexOf(END_OF_TEXT);
  const special = { bos: eosId, eos: [eosId, SPECIAL_TOKENS.indexOf(IM_END)], pad: eosId };
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(hfConfigJson(config, special), null, 2) + '\n');
  writeFileSync(join(outDir, 'generation_config.json'), JSON.stringify({
    bos_token_id: special.bos, eos_token_id: special.eos, pad_token_id: special.pad, max_length: seqLen,
  }, null, 2) + '\n');

  const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  const trainTokens = encodeDocuments(tokenizer, trainDocs, eosId);
  const valTokens = encodeDocuments(tokenizer, valDocs, eosId);
  log(`tokens: train ${trainTokens.length}, validation ${valTokens.length}`);

  const weights = initWeights(config, seed);
  const params = [...weights.values()].reduce((n, w) => n + w.size, 0);
  log(`model: ${params} parameters; batch ${batch} x ${seqLen}, lr ${peakLr}, up to ${maxSteps} steps / ${args.minutes} min`);
  const ctx = forwardContext(config, seqLen);
  const optimizer = new AdamW(weights, { beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, clipNorm: 1 });
  const trainRng = new Rng(seed + 1);
  const history: { step: number; trainLoss: number; valLoss: number; minutes: number }[] = [];
  const started = Date.now();
  let recent: number[] = [];

  const validationLoss = (): number => {
    const rng = new Rng(seed + 2); // the same windows every time, so evaluations compare
    let total = 0;
    const rounds = 4;
    for (let r = 0; r < rounds; r++) {
      total += tf.tidy(() => {
        const { ids, targets } = sampleBatch(valTokens, rng);
        return lossOf(forward(weights, config, ctx, ids), targets, config.vocabSize).dataSync()[0] as number;
      });
    }
    return total / rounds;
  };

  let step = 0;
  for (; step < maxSteps && Date.now() - started < budgetMs; step++) {
    const { ids, targets } = sampleBatch(trainTokens, trainRng);
    const { value, grads } = tf.variableGrads(
      () => lossOf(forward(weights, config, ctx, ids), targets, config.vocabSize),
      [...weights.values()]);
    const loss = value.dataSync()[0] as number;
    const gradNorm = optimizer.apply(grads, learningRate(step));
    tf.dispose([value, ids, targets, ...Object.values(grads)]);
    recent.push(loss);
    if (step % 10 === 0 || step < 5) log(`step ${step} loss ${loss.toFixed(4)} grad-norm ${gradNorm.toFixed(3)} lr ${learningRate(step).toExponential(2)} tensors ${tf.memory().numTensors}`);
    if ((step + 1) % evalEvery === 0) {
      const valLoss = validationLoss();
      const trainLoss = recent.reduce((a, b) => a + b, 0) / recent.length;
      recent = [];
      const minutes = (Date.now() - started) / 60_000;
      history.push({ step: step + 1, trainLoss, valLoss, minutes });
      log(`eval step ${step + 1}: train ${trainLoss.toFixed(4)} validation ${valLoss.toFixed(4)} (${minutes.toFixed(1)} min)`);
      saveModel(outDir, weights, { step: String(step + 1) });
    }
  }
  const valLoss = validationLoss();
  const minutes = (Date.now() - started) / 60_000;
  saveModel(outDir, weights, { step: String(step) });
  const record = {
    seed, corpus: corpusPath, documents: { train: trainDocs.length, validation: valDocs.length },
    tokens: { train: trainTokens.length, validation: valTokens.length }, parameters: params, config,
    batch, seqLen, peakLr, warmupSteps, plannedSteps: maxSteps, steps: step, minutes, finalValidationLoss: valLoss,
    backend: tf.getBackend(), history,
  };
  writeFileSync(join(outDir, 'training.json'), JSON.stringify(record, null, 2) + '\n');
  writeFileSync(join(outDir, 'TRAINING.md'), trainingMarkdown(record));
  log(`done: ${step} steps in ${minutes.toFixed(1)} min, validation loss ${valLoss.toFixed(4)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
