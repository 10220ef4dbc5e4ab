/**
 * One fine-tuning job on the resident base: read and tokenize the dataset, add a fresh (or parent-initialised)
 * LoRA adapter, run the engine's training loop, and write the PEFT adapter atomically. The adapter is removed
 * from the base afterwards so chat sees the base as it was.
 */
import { adapterVariables, attachAdapterWeights, injectAdapter, peftWeightsOf, removeAdapter, type InjectedAdapter } from '../engine/lora/inject';
import { resolveLoraConfig } from '../engine/lora/config';
import { loadAdapter, saveAdapter } from '../engine/lora/peft-io';
import { loadDataset } from '../engine/train/datasets/dataset';
import { storedDatasetFile } from '../engine/train/datasets/normalize';
import { estimateTraining } from '../engine/train/estimate';
import { trainLoop } from '../engine/train/loop';
import { evaluationSampler } from '../engine/train/sample';
import { tokenizeExamples } from '../engine/train/tokenize';
import type { LoadedBase } from './model-loader';
import type { HostResults, TrainJob, TrainOutcome, TrainProgressEvent } from './protocol';

const TRAINING_ADAPTER = '__training__';

function addAdapter(base: LoadedBase, job: TrainJob): InjectedAdapter {
  const name = `${TRAINING_ADAPTER}${job.runId}`;
  if (job.parentAdapterDir) {
    const parent = loadAdapter(job.parentAdapterDir);
    return attachAdapterWeights(base.model, name, { ...parent.config, dropout: job.lora.dropout }, parent.modules, { activate: true });
  }
  const config = resolveLoraConfig({
    targetModules: typeof job.lora.targetModules === 'string' ? job.lora.targetModules : [...job.lora.targetModules],
    rank: job.lora.rank,
    alpha: job.lora.alpha,
    dropout: job.lora.dropout,
    useRslora: job.lora.useRslora,
  });
  return injectAdapter(base.model, name, config, { seed: job.hyperparameters.seed ?? 0, activate: true });
}

function prepareRows(base: LoadedBase, job: TrainJob) {
  const seed = job.hyperparameters.seed ?? 42;
  const dataset = loadDataset({ path: storedDatasetFile(job.dataset), format: job.dataset.format, valSplit: job.valSplit, seed });
  const options = { maxSeqLen: job.maxSeqLen, trainOnAll: job.trainOnPrompt };
  const trainRows = tokenizeExamples(dataset.train, base.tokenizer, options).examples;
  const valRows = dataset.val.length > 0 ? tokenizeExamples(dataset.val, base.tokenizer, options).examples : [];
  const { config } = base.model;
  return { trainRows, valRows, padId: config.padTokenId ?? config.eosTokenIds[0] ?? 0 };
}

/** Times a couple of micro-steps of the job with a throw-away adapter; the base is left as it was. */
export async function estimateJob(base: LoadedBase, job: TrainJob): Promise<HostResults['estimate']> {
  const { trainRows, padId } = prepareRows(base, job);
  const previousActive = new Map([...base.model.linears].map(([path, layer]) => [path, layer.active]));
  const adapter = addAdapter(base, { ...job, runId: `estimate-${job.runId}` });
  try {
    const e = await estimateTraining({ model: base.model, variables: adapterVariables(adapter), rows: trainRows, padId, hyperparameters: { ...job.hyperparameters, maxSteps: job.hyperparameters.maxSteps ?? null } });
    return {
      trainableParams: e.trainableParameters, totalParams: base.model.parameterCount(), adapterBytes: e.adapterBytes,
      peakMemoryBytes: e.peakMemoryBytes, availableMemoryBytes: e.availableMemoryBytes, recompute: e.recompute,
      secondsPerEpoch: e.secondsPerEpoch, stepsPerEpoch: e.stepsPerEpoch,
    };
  } finally {
    removeAdapter(base.model, adapter.name);
    for (const [path, layer] of base.model.linears) layer.setActive(previousActive.get(path) ?? []);
  }
}

export async function runTrainJob(
  base: LoadedBase,
  job: TrainJob,
  signal: AbortSignal,
  onProgress: (event: TrainProgressEvent) => void,
): Promise<TrainOutcome> {
  const { trainRows, valRows, padId } = prepareRows(base, job);
  const previousActive = new Map([...base.model.linears].map(([path, layer]) => [path, layer.active]));
  const adapter = addAdapter(base, job);
  const fanInFanOut = [...adapter.modules.values()].some((m) => m.spec.fanInFanOut);
  const meta = { baseModelNameOrPath: job.modelDir, fanInFanOut };
  const sampleAtEval = evaluationSampler(base.model, base.tokenizer, [...valRows, ...trainRows]);
  try {
    const result = await trainLoop({
      model: base.model,
      variables: adapterVariables(adapter),
      trainRows,
      valRows,
      padId,
      hyperparameters: { ...job.hyperparameters, maxSteps: job.hyperparameters.maxSteps ?? null },
      checkpointDir: job.checkpointDir,
      ...(job.resumeFrom ? { resumeFrom: job.resumeFrom } : {}),
      signal,
      onProgress: (p) => onProgress({ ...p }),
      ...(sampleAtEval ? { sampleAtEval } : {}),
    });
    let adapterDir: string | null = null;
    if (result.status !== 'cancelled') {
      const record = JSON.stringify({ runId: job.runId, steps: result.steps, trainLoss: result.trainLoss, valLoss: result.valLoss, hyperparameters: result.hyperparameters }, null, 2);
      saveAdapter(job.outputDir, adapter.config, await peftWeightsOf(adapter), { ...meta, extraFiles: new Map([['training_record.json', record + '\n']]) });
      adapterDir = job.outputDir;
    }
    return {
      status: result.status,
      steps: result.steps,
      totalSteps: result.totalSteps,
      trainLoss: result.trainLoss,
      valLoss: result.valLoss,
      adapterDir,
      lastCheckpoint: result.lastCheckpoint,
      seconds: result.seconds,
    };
  } finally {
    removeAdapter(base.model, adapter.name);
    for (const [path, layer] of base.model.linears) layer.setActive(previousActive.get(path) ?? []);
  }
}
