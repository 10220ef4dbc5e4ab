import { describe, expect, it } from 'vitest';
import { moduleSettings, resolveLoraConfig, resolveTargets } from '../../../main/engine/lora/config';
import type { LinearSpec } from '../../../main/engine/models/types';

function spec(path: string, groups: LinearSpec['groups'] = []): LinearSpec {
  return { path, name: path.split('.').pop() as string, layer: 0, inFeatures: 4, outFeatures: 4, groups, fanInFanOut: false };
}

const llama = [
  spec('model.layers.0.self_attn.q_proj', ['attention']),
  spec('model.layers.0.self_attn.k_proj', ['attention']),
  spec('model.layers.0.self_attn.v_proj', ['attention']),
  spec('model.layers.0.mlp.gate_proj', ['mlp']),
  spec('model.layers.1.self_attn.q_proj', ['attention']),
  spec('model.layers.1.mlp.down_proj', ['mlp']),
  spec('lm_head'),
];
const paths = (t: Parameters<typeof resolveTargets>[1]) => resolveTargets(llama, t).modules.map((s) => s.path);

describe('LoRA config validation', () => {
  it.each([
    [{ rank: 0 }, 'rank must be a positive integer, got 0'],
    [{ rank: 2.5 }, 'rank must be a positive integer, got 2.5'],
    [{ alpha: -1 }, 'alpha must be a positive number, got -1'],
    [{ dropout: 1 }, 'dropout must be in [0, 1), got 1'],
    [{ targetModules: [] }, 'targetModules must be a non-empty list'],
    [{ targetModules: '(' }, "targetModules is not a valid regular expression: '('"],
    [{ rankPattern: { q_proj: 0 } }, "rankPattern['q_proj'] must be a positive integer, got 0"],
    [{ alphaPattern: { v_proj: Number.NaN } }, "alphaPattern['v_proj'] must be a positive number, got NaN"],
  ])('%j is refused with a message naming the value', (partial, message) => {
    expect(() => resolveLoraConfig(partial as never)).toThrow(message);
    try {
      resolveLoraConfig(partial as never);
    } catch (e) {
      expect((e as { code: string }).code).toBe('INVALID_LORA_CONFIG');
    }
  });

  it('fills PEFT-like defaults', () => {
    const c = resolveLoraConfig({ rank: 4 });
    expect(c).toMatchObject({ rank: 4, alpha: 16, useRslora: false, rankPattern: {}, alphaPattern: {} });
  });
});

describe('target modules', () => {
  it('matches suffixes as PEFT does (whole segments only)', () => {
    expect(paths(['q_proj'])).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
    expect(paths(['proj'])).toEqual([]); // 'q_proj' does not end with '.proj'
  });
  it('matches exact paths', () => {
    expect(paths(['model.layers.1.mlp.down_proj'])).toEqual(['model.layers.1.mlp.down_proj']);
  });
  it('a single string is a regex over the whole path', () => {
    expect(paths('.*layers\\.0\\..*_proj')).toEqual(llama.slice(0, 4).map((s) => s.path));
    expect(paths('q_proj')).toEqual([]); // fullmatch, not search
  });
  it('groups: attention, mlp, all-linear (without lm_head)', () => {
    expect(paths('attention')).toHaveLength(4);
    expect(paths('mlp')).toEqual(['model.layers.0.mlp.gate_proj', 'model.layers.1.mlp.down_proj']);
    expect(paths('all-linear')).toHaveLength(6);
  });
  it('reports list entries that match nothing', () => {
    expect(resolveTargets(llama, ['q_proj', 'q_porj']).unmatched).toEqual(['q_porj']);
  });
});

describe('per-module rank and alpha', () => {
  it('scaling is alpha/r, or alpha/sqrt(r) with rsLoRA', () => {
    expect(moduleSettings(resolveLoraConfig({ rank: 4, alpha: 8 }), 'a.q_proj').scaling).toBe(2);
    expect(moduleSettings(resolveLoraConfig({ rank: 4, alpha: 8, useRslora: true }), 'a.q_proj').scaling).toBe(4);
  });
  it('rank_pattern / alpha_pattern override by suffix or regex, as PEFT matches them', () => {
    const c = resolveLoraConfig({ rank: 8, alpha: 16, rankPattern: { q_proj: 2, 'layers\\.1\\..*': 4 }, alphaPattern: { down_proj: 3 } });
    expect(moduleSettings(c, 'model.layers.0.self_attn.q_proj')).toEqual({ rank: 2, alpha: 16, scaling: 8 });
    expect(moduleSettings(c, 'model.layers.1.mlp.down_proj')).toEqual({ rank: 4, alpha: 3, scaling: 0.75 });
    expect(moduleSettings(c, 'model.layers.0.self_attn.v_proj')).toEqual({ rank: 8, alpha: 16, scaling: 2 });
  });
});
