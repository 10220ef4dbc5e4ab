/**
 * The published configs of the models people fine-tune (test/fixtures/model-configs: Qwen3-0.6B and 1.7B,
 * Gemma-3-270M and 1B, Phi-3-mini, Llama-3.2-1B) through `lorasmith inspect` on a folder holding config.json alone:
 * the parameter count from the config equals the published one (model cards; keras-hub's preset metadata gives the
 * exact figures), and the linear modules and their shapes are the checkpoints' own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../main/cli/index';
import type { ModelSummary } from '../../../main/engine/models/inspect';
import { parseModelConfig } from '../../../main/engine/models/registry';
import type { DecoderConfig } from '../../../main/engine/models/decoder-config';

const configs = join(import.meta.dirname, '../../fixtures/model-configs');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'real-shapes-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function inspect(name: string): Promise<ModelSummary> {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  copyFileSync(join(configs, `${name}.json`), join(folder, 'config.json'));
  let out = '';
  const code = await main(['inspect', folder, '--json'], { out: (t) => (out += t), err: () => undefined });
  expect(code).toBe(0);
  return JSON.parse(out) as ModelSummary;
}

interface Expected {
  params: number;
  /** Distinct linear kinds of a layer with their [in, out]. */
  kinds: Record<string, [number, number]>;
  layers: number;
}

const published: Record<string, Expected> = {
  // 0.6B: 0.44B non-embedding + 151936·1024 tied embedding
  'Qwen3-0.6B': { params: 596_049_920, layers: 28, kinds: { q_proj: [1024, 2048], k_proj: [1024, 1024], v_proj: [1024, 1024], o_proj: [2048, 1024], gate_proj: [1024, 3072], up_proj: [1024, 3072], down_proj: [3072, 1024] } },
  'Qwen3-1.7B': { params: 1_720_574_976, layers: 28, kinds: { q_proj: [2048, 2048], k_proj: [2048, 1024], v_proj: [2048, 1024], o_proj: [2048, 2048], gate_proj: [2048, 6144], up_proj: [2048, 6144], down_proj: [6144, 2048] } },
  // "170M embedding + 100M transformer parameters"
  'gemma-3-270m': { params: 268_098_176, layers: 18, kinds: { q_proj: [640, 1024], k_proj: [640, 256], v_proj: [640, 256], o_proj: [1024, 640], gate_proj: [640, 2048], up_proj: [640, 2048], down_proj: [2048, 640] } },
  'gemma-3-1b-it': { params: 999_885_952, layers: 26, kinds: { q_proj: [1152, 1024], k_proj: [1152, 256], v_proj: [1152, 256], o_proj: [1024, 1152], gate_proj: [1152, 6912], up_proj: [1152, 6912], down_proj: [6912, 1152] } },
  'Phi-3-mini-4k-instruct': { params: 3_821_079_552, layers: 32, kinds: { qkv_proj: [3072, 9216], o_proj: [3072, 3072], gate_up_proj: [3072, 16384], down_proj: [8192, 3072] } },
  'Llama-3.2-1B': { params: 1_235_814_400, layers: 16, kinds: { q_proj: [2048, 2048], k_proj: [2048, 512], v_proj: [2048, 512], o_proj: [2048, 2048], gate_proj: [2048, 8192], up_proj: [2048, 8192], down_proj: [8192, 2048] } },
};

describe('lorasmith inspect on published configs (no weights)', () => {
  for (const [name, want] of Object.entries(published)) {
    it(`${name}: ${want.params.toLocaleString('en-US')} parameters and its linear modules`, async () => {
      const s = await inspect(name);
      expect(s.parameterSource).toBe('config');
      expect(s.parameterCount).toBe(want.params);
      expect(s.config.numLayers).toBe(want.layers);
      const kinds = Object.keys(want.kinds);
      expect(s.linears).toHaveLength(want.layers * kinds.length + 1);
      for (const l of s.linears.filter((x) => x.layer === want.layers - 1)) {
        expect([l.inFeatures, l.outFeatures], l.path).toEqual(want.kinds[l.name]);
      }
      const groups = Object.fromEntries(s.targetGroups.map((g) => [g.group, g.moduleNames]));
      expect([...(groups.attention ?? []), ...(groups.mlp ?? [])].sort()).toEqual([...kinds].sort());
    });
  }

  it('reads Gemma 3 local and global layers, windows and rope bases from the published configs', () => {
    for (const name of ['gemma-3-270m', 'gemma-3-1b-it']) {
      const raw = JSON.parse(readFileSync(join(configs, `${name}.json`), 'utf8')) as Record<string, unknown>;
      const c = parseModelConfig(raw, dir) as DecoderConfig;
      // five local layers with window 512 and θ 10⁴, then one global layer with θ 10⁶
      expect(c.layers.slice(0, 6).map((l) => l.window)).toEqual([512, 512, 512, 512, 512, null]);
      expect(c.layers[0]?.rotary.invFreq(1)[1]).toBeCloseTo(1 / 10000 ** (2 / 256), 12);
      expect(c.layers[5]?.rotary.invFreq(1)[1]).toBeCloseTo(1 / 1e6 ** (2 / 256), 12);
      expect(c.attentionScale).toBe(1 / 16);
      expect(c.tieWordEmbeddings).toBe(true);
    }
  });

  it('refuses what it would run wrongly, naming the field', () => {
    const phi35 = { ...JSON.parse(readFileSync(join(configs, 'Phi-3-mini-4k-instruct.json'), 'utf8')), rope_scaling: { type: 'longrope', long_factor: [1], short_factor: [1] } };
    expect(() => parseModelConfig(phi35, dir)).toThrow(/rope scaling "short_factor" must list 48 positive numbers/);
    const qwen3 = JSON.parse(readFileSync(join(configs, 'Qwen3-0.6B.json'), 'utf8')) as Record<string, unknown>;
    expect(() => parseModelConfig({ ...qwen3, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }, dir)).toThrow(/"yarn" is not supported \(default, linear, llama3, longrope\)/);
    expect(() => parseModelConfig({ ...qwen3, rope_scaling: { rope_type: 'dynamic', factor: 2 } }, dir)).toThrow(/"dynamic" is not supported/);
    expect(() => parseModelConfig({ ...qwen3, partial_rotary_factor: 0.5 }, dir)).toThrow(/"partial_rotary_factor": 0.5 is not supported/);
    const gemma = JSON.parse(readFileSync(join(configs, 'gemma-3-270m.json'), 'utf8')) as Record<string, unknown>;
    expect(() => parseModelConfig({ ...gemma, use_bidirectional_attention: true }, dir)).toThrow(/"use_bidirectional_attention": true is not supported/);
    expect(() => parseModelConfig({ ...gemma, layer_types: ['full_attention'] }, dir)).toThrow(/"layer_types" must list 18 entries/);
    expect(() => parseModelConfig({ ...gemma, model_type: 'gemma3' }, dir)).toThrow(/model_type 'gemma3' is the vision-language Gemma 3.*gemma3_text/);
  });
});
