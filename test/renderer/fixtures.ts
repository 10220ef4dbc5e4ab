/** Domain records for the state tests, shaped like what main returns. */
import type { Adapter, AdapterVersion, BaseModel, Dataset, LinearModuleInfo, TrainingRun } from '../../preload/contract';
import { DEFAULT_SETTINGS } from '../../renderer/src/lib/settings-form';

export const MODEL: BaseModel = {
  id: 'm1', name: 'tiny-llama', architecture: 'LlamaForCausalLM', source: { kind: 'folder', ref: '/models/tiny' },
  path: '/data/models/m1', parameterCount: 4_718_592, contentHash: 'abc123', addedAt: '2026-11-28T10:00:00Z', status: 'ok',
};

export const DATASET: Dataset = {
  id: 'd1', name: 'pirate', originalFile: '/data/datasets/d1/pirate.jsonl', normalizedFile: '/data/datasets/d1/n.jsonl',
  format: 'messages', recordCount: 120, skippedCount: 1, hash: 'h', addedAt: '2026-11-28T10:01:00Z', status: 'ok',
};

/**
 * A 2-layer Llama-shaped model, hidden 64, MLP 172, 4 KV heads of 8 (k/v out = 32): the shapes the
 * parameter count is checked against.
 */
export function llamaModules(layers = 2, hidden = 64, kv = 32, mlp = 172): LinearModuleInfo[] {
  const modules: LinearModuleInfo[] = [];
  for (let layer = 0; layer < layers; layer++) {
    const at = (name: string, inFeatures: number, outFeatures: number, group: 'attention' | 'mlp', block: string) =>
      modules.push({ path: `model.layers.${layer}.${block}.${name}`, layer, name, inFeatures, outFeatures, groups: [group] });
    at('q_proj', hidden, hidden, 'attention', 'self_attn');
    at('k_proj', hidden, kv, 'attention', 'self_attn');
    at('v_proj', hidden, kv, 'attention', 'self_attn');
    at('o_proj', hidden, hidden, 'attention', 'self_attn');
    at('gate_proj', hidden, mlp, 'mlp', 'mlp');
    at('up_proj', hidden, mlp, 'mlp', 'mlp');
    at('down_proj', mlp, hidden, 'mlp', 'mlp');
  }
  modules.push({ path: 'lm_head', layer: null, name: 'lm_head', inFeatures: hidden, outFeatures: 1000, groups: [] });
  return modules;
}

export const SETTINGS = { ...DEFAULT_SETTINGS, lora: { ...DEFAULT_SETTINGS.lora, targetModules: ['q_proj', 'v_proj'] } };

export function run(overrides: Partial<TrainingRun> = {}): TrainingRun {
  return {
    id: 'r1', adapterId: 'a1', adapterName: 'pirate-voice', adapterVersionId: null, baseModelId: 'm1', datasetId: 'd1', status: 'running', startedAt: '2026-11-28T10:02:00Z',
    finishedAt: null, error: null, lastCheckpoint: null, checkpointStep: null, settings: SETTINGS, ...overrides,
  };
}

export const ADAPTER: Adapter = { id: 'a1', name: 'pirate-voice', baseModelId: 'm1', createdAt: '2026-11-28T10:05:00Z' };

export function version(id: string, n: number, parent: string | null, overrides: Partial<AdapterVersion> = {}): AdapterVersion {
  return {
    id, adapterId: 'a1', version: n, parentVersionId: parent, datasetId: 'd1', settings: SETTINGS,
    metrics: { trainLoss: 1.5 - n * 0.1, valLoss: 1.7 - n * 0.1, steps: 30 * n }, path: `/data/adapters/a1/v${n}`,
    status: 'ok', createdAt: '2026-11-28T10:05:00Z', ...overrides,
  };
}
