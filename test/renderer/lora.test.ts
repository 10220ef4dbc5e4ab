import { describe, expect, it } from 'vitest';
import {
  loraScaling, moduleGrid, presetSelection, selectionOf, targetModulesOf, trainableParameters,
} from '../../renderer/src/lib/lora';
import type { LinearModuleInfo } from '../../preload/contract';
import { llamaModules } from './fixtures';

describe('LoRA arithmetic for the wizard', () => {
  const modules = llamaModules();

  it('q,v at r = 8 counts A [r, in] + B [out, r] per module: 2 layers × (8·(64+64) + 8·(64+32))', () => {
    const selected = presetSelection(modules, 'qv');
    // Written out by hand: q_proj 64→64, v_proj 64→32, two layers.
    const expected = 2 * (8 * 64 + 64 * 8 + (8 * 64 + 32 * 8));
    expect(trainableParameters(modules, selected, 8)).toBe(expected);
    expect(expected).toBe(3584);
  });

  it('all-linear at r = 4 matches a sum over the module shapes, and lm_head is never selected', () => {
    const selected = presetSelection(modules, 'all-linear');
    expect(selected.has('lm_head')).toBe(false);
    expect(selected.size).toBe(14);
    const perLayer = 4 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64) + (64 + 172) + (64 + 172) + (172 + 64));
    expect(trainableParameters(modules, selected, 4)).toBe(2 * perLayer);
  });

  it('presets pick the right groups', () => {
    const names = (preset: Parameters<typeof presetSelection>[1]) =>
      [...new Set([...presetSelection(modules, preset)].map((p) => p.split('.').at(-1)))].sort();
    expect(names('qv')).toEqual(['q_proj', 'v_proj']);
    expect(names('attention')).toEqual(['k_proj', 'o_proj', 'q_proj', 'v_proj']);
    expect(names('mlp')).toEqual(['down_proj', 'gate_proj', 'up_proj']);
  });

  it('GPT-2: the fused c_attn stands in for q and v', () => {
    const gpt2: LinearModuleInfo[] = [0, 1].flatMap((layer) => [
      { path: `h.${layer}.attn.c_attn`, layer, name: 'c_attn', inFeatures: 768, outFeatures: 2304, groups: ['attention'] as const },
      { path: `h.${layer}.mlp.c_fc`, layer, name: 'c_fc', inFeatures: 768, outFeatures: 3072, groups: ['mlp'] as const },
    ]);
    expect([...presetSelection(gpt2, 'qv')]).toEqual(['h.0.attn.c_attn', 'h.1.attn.c_attn']);
    expect(trainableParameters(gpt2, presetSelection(gpt2, 'qv'), 8)).toBe(2 * 8 * (768 + 2304));
  });

  it('an invalid rank counts nothing rather than a misleading number', () => {
    const selected = presetSelection(modules, 'qv');
    expect(trainableParameters(modules, selected, 0)).toBe(0);
    expect(trainableParameters(modules, selected, 2.5)).toBe(0);
  });

  it('target_modules: short names when every layer is chosen, full paths otherwise, and back', () => {
    const all = presetSelection(modules, 'qv');
    expect(targetModulesOf(modules, all)).toEqual(['q_proj', 'v_proj']);
    const partial = new Set(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.v_proj']);
    const targets = targetModulesOf(modules, partial);
    expect(targets).toEqual(['model.layers.0.self_attn.q_proj', 'v_proj']);
    expect(selectionOf(modules, targets)).toEqual(partial);
  });

  it('scaling is alpha / r, or alpha / sqrt(r) with rsLoRA', () => {
    expect(loraScaling(16, 8, false)).toBe(2);
    expect(loraScaling(16, 64, true)).toBe(2);
  });

  it('the grid has one row per layer, one column per name, and keeps lm_head apart', () => {
    const grid = moduleGrid(modules);
    expect(grid.rows.map((r) => r.layer)).toEqual([0, 1]);
    expect(grid.names).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(grid.outside.map((m) => m.name)).toEqual(['lm_head']);
    expect(grid.rows[1]?.cells.get('down_proj')?.path).toBe('model.layers.1.mlp.down_proj');
  });
});
