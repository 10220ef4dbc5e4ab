/**
 * Input schemas, one per command: every handler's args are parsed here before it acts. `satisfies` ties the
 * table to the contract's names, so a command without a schema does not compile.
 */
import { z } from 'zod';
import type { CommandName } from '../../preload/contract';

const empty = z.object({}).strict();
const id = z.string().min(1).max(200).regex(/^[A-Za-z0-9_.:-]+$/, 'ids contain only letters, digits and _ . : -');
const path = z.string().min(1).max(4096);
const backend = z.enum(['tensorflow', 'webgpu', 'wasm', 'cpu', 'auto']);
export const datasetFormat = z.enum(['prompt-completion', 'alpaca', 'messages', 'sharegpt', 'text']);

const lora = z.object({
  targetModules: z.array(z.string().min(1).max(200)).min(1).max(64),
  rank: z.number().int().min(1).max(1024),
  alpha: z.number().positive().max(4096),
  dropout: z.number().min(0).max(0.9),
  useRslora: z.boolean(),
}).strict();

export const trainingSettings = z.object({
  lora,
  epochs: z.number().int().min(1).max(1000).optional(),
  maxSteps: z.number().int().min(1).max(10_000_000).optional(),
  learningRate: z.number().positive().max(1),
  batchSize: z.number().int().min(1).max(4096),
  gradAccum: z.number().int().min(1).max(4096),
  maxSeqLen: z.number().int().min(2).max(131072),
  valSplit: z.number().min(0).max(0.5),
  seed: z.number().int().min(0).max(2 ** 31 - 1),
  scheduler: z.enum(['constant', 'linear', 'cosine']),
  warmupSteps: z.number().int().min(0),
  weightDecay: z.number().min(0).max(1),
  maxGradNorm: z.number().min(0),
  evalEvery: z.number().int().min(0),
  checkpointEvery: z.number().int().min(0),
  earlyStoppingPatience: z.number().int().min(0).optional(),
  keepWeights: z.enum(['best', 'last']).optional(),
  trainOnPrompt: z.boolean(),
  recompute: z.enum(['auto', 'on', 'off']).optional(),
  basePrecision: z.enum(['stored', 'bf16', 'q8_0', 'q4_0']).optional(),
}).strict();

export const sampling = z.object({
  maxNewTokens: z.number().int().min(1).max(32768),
  temperature: z.number().min(0).max(10),
  topK: z.number().int().min(0),
  topP: z.number().min(0).max(1),
  repetitionPenalty: z.number().min(0.5).max(5),
  seed: z.number().int().min(0).max(2 ** 31 - 1),
}).strict();

const mix = z.object({ adapters: z.array(z.object({ versionId: id, scale: z.number().min(-4).max(4) }).strict()).max(8) }).strict();
const messages = z.array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(200_000) }).strict()).min(1).max(500);

const settings = z.object({
  backend,
  theme: z.enum(['light', 'dark', 'system']),
  defaults: trainingSettings.partial(),
  remoteEngine: z.object({ address: z.string().min(1).max(300), token: z.string().max(300) }).strict().nullable(),
}).strict();

export const SCHEMAS = {
  'app.info': empty,
  'app.firstRun': empty,
  'settings.get': empty,
  'settings.set': settings.partial(),
  'models.list': empty,
  'models.import': z.object({ path, mode: z.enum(['copy', 'reference']), name: z.string().min(1).max(200).optional() }).strict(),
  'models.modules': z.object({ id }).strict(),
  'models.delete': z.object({ id }).strict(),
  'models.download': z.object({
    repoId: z.string().max(200).regex(/^(?:[A-Za-z0-9][A-Za-z0-9_.-]*\/)?[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a hub repo id is owner/name (letters, digits, _ . -)')
      .refine((s) => !s.includes('..'), 'a hub repo id must not contain ..'),
    revision: z.string().min(1).max(200).regex(/^[A-Za-z0-9_.-]+$/, 'a revision is a branch, tag or commit (letters, digits, _ . -)')
      .refine((s) => !s.includes('..'), 'a revision must not contain ..').optional(),
  }).strict(),
  'models.cancelDownload': z.object({ id }).strict(),
  'models.findGguf': z.object({ folder: path.optional() }).strict(),
  'models.importGguf': z.object({ path, name: z.string().min(1).max(200).optional() }).strict(),
  'datasets.list': empty,
  'datasets.import': z.object({ path, format: datasetFormat.optional(), name: z.string().min(1).max(200).optional() }).strict(),
  'datasets.preview': z.object({ id, modelId: id, limit: z.number().int().min(1).max(200) }).strict(),
  'datasets.delete': z.object({ id }).strict(),
  'adapters.list': empty,
  'adapters.versions': z.object({ adapterId: id }).strict(),
  'adapters.deleteVersion': z.object({ versionId: id }).strict(),
  'adapters.exportPeft': z.object({ versionId: id, destination: path }).strict(),
  'adapters.exportMerged': z.object({ versionId: id, destination: path }).strict(),
  'adapters.delete': z.object({ adapterId: id }).strict(),
  'adapters.exportGguf': z.object({ versionId: id, destination: path, kind: z.enum(['adapter', 'merged']), type: z.enum(['F16', 'BF16', 'Q8_0']).optional() }).strict(),
  'adapters.checkPeft': z.object({ path, modelId: id }).strict(),
  'adapters.importPeft': z.object({ path, modelId: id, name: z.string().trim().min(1).max(100) }).strict(),
  'adapters.analyze': z.object({ versionId: id }).strict(),
  'adapters.reduce': z.object({ versionId: id, rank: z.number().int().min(1).max(1024) }).strict(),
  'train.propose': z.object({ modelId: id, datasetId: id, settings: trainingSettings.optional() }).strict(),
  'train.estimate': z.object({ modelId: id, datasetId: id, settings: trainingSettings }).strict(),
  'train.measurePrecision': z.object({ requestId: id, modelId: id, datasetId: id, settings: trainingSettings }).strict(),
  'train.stopMeasure': z.object({ requestId: id }).strict(),
  'train.start': z.object({
    modelId: id, datasetId: id, settings: trainingSettings,
    adapterName: z.string().trim().min(1).max(100), parentVersionId: id.optional(),
  }).strict(),
  'train.cancel': z.object({ runId: id }).strict(),
  'train.resume': z.object({ runId: id }).strict(),
  'runs.list': empty,
  'runs.metrics': z.object({ runId: id }).strict(),
  'runs.delete': z.object({ runId: id }).strict(),
  'runs.exportForPeft': z.object({ modelId: id, datasetId: id, settings: trainingSettings, parentVersionId: id.optional(), destination: path }).strict(),
  'runs.importResult': z.object({ path, adapterName: z.string().trim().min(1).max(200).optional() }).strict(),
  'chat.load': z.object({ modelId: id }).strict(),
  'chat.generate': z.object({ requestId: id, mix, messages, sampling }).strict(),
  'chat.stop': z.object({ requestId: id }).strict(),
  'dialog.openPath': z.object({ purpose: z.enum(['model-folder', 'dataset-file', 'export-folder', 'run-folder', 'adapter-folder']) }).strict(),
  'comparisons.save': z.object({
    title: z.string().trim().min(1).max(200),
    baseModelId: id.nullable(),
    messages,
    sampling,
    outputs: z.array(z.object({
      turn: z.number().int().min(0).max(499), label: z.string().min(1).max(500), mix, text: z.string().max(200_000),
      tokens: z.number().int().min(0), tokensPerSecond: z.number().min(0).nullable(),
    }).strict()).min(1).max(1500),
  }).strict(),
  'comparisons.list': empty,
  'comparisons.delete': z.object({ id }).strict(),
} satisfies Record<CommandName, z.ZodType>;
