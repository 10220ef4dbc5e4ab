/**
 * The wizard's module grid and the model page's module table for each supported family, from the module lists the
 * engine reports for real configs (GPT-2's tiny fixture; Qwen3-0.6B, Gemma-3-270M, Phi-3-mini, Llama-3.2-1B):
 * one column / row per distinct module kind and shape, GPT-2's attention and MLP c_proj apart, and target_modules
 * that PEFT matches to exactly the chosen modules.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LinearModuleInfo } from '../../preload/contract';
import { linearSpecsOf, parseModelConfig, readModelConfig } from '../../main/engine/models/registry';
import { moduleGrid, moduleSummary, selectionOf, targetModulesOf } from '../../renderer/src/lib/lora';

const fixtures = join(import.meta.dirname, '../fixtures');

function modulesOf(config: ReturnType<typeof readModelConfig>): LinearModuleInfo[] {
  return linearSpecsOf(config).map(({ path, layer, name, inFeatures, outFeatures, groups }) => ({ path, layer, name, inFeatures, outFeatures, groups }));
}
const published = (name: string) =>
  modulesOf(parseModelConfig(JSON.parse(readFileSync(join(fixtures, 'model-configs', `${name}.json`), 'utf8')) as Record<string, unknown>, fixtures));

describe('module table per family', () => {
  it('GPT-2: attn.c_proj (32 → 32) and mlp.c_proj (128 → 32) are two kinds, each its own column and row', () => {
    const modules = modulesOf(readModelConfig(join(fixtures, 'tiny-random-gpt2')));
    const grid = moduleGrid(modules);
    expect(grid.names).toEqual(['c_attn', 'attn.c_proj', 'c_fc', 'mlp.c_proj']);
    expect(grid.rows).toHaveLength(5);
    expect(grid.rows[2]?.cells.get('attn.c_proj')?.path).toBe('transformer.h.2.attn.c_proj');
    expect(grid.rows[2]?.cells.get('mlp.c_proj')?.path).toBe('transformer.h.2.mlp.c_proj');
    expect(moduleSummary(modules).map((r) => [r.kind, r.layers, r.inFeatures, r.outFeatures])).toEqual([
      ['c_attn', 5, 32, 96], ['attn.c_proj', 5, 32, 32], ['c_fc', 5, 32, 128], ['mlp.c_proj', 5, 128, 32], ['lm_head', 1, 32, 1000],
    ]);
    // Every layer's attention c_proj: one PEFT suffix that does not also catch the MLP's.
    const attnProj = new Set(modules.filter((m) => m.path.endsWith('.attn.c_proj')).map((m) => m.path));
    expect(targetModulesOf(modules, attnProj)).toEqual(['attn.c_proj']);
    expect(selectionOf(modules, ['attn.c_proj'])).toEqual(attnProj);
    // A PEFT adapter saved with the bare name targets both, as PEFT would.
    expect(selectionOf(modules, ['c_proj']).size).toBe(10);
  });

  const families: [string, string[], number][] = [
    ['Qwen3-0.6B', ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 28],
    ['gemma-3-270m', ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 18],
    ['Phi-3-mini-4k-instruct', ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], 32],
    ['Llama-3.2-1B', ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 16],
  ];
  for (const [name, kinds, layers] of families) {
    it(`${name}: one column per module kind, one table row per kind and shape, lm_head apart`, () => {
      const modules = published(name);
      const grid = moduleGrid(modules);
      expect(grid.names).toEqual(kinds);
      expect(grid.rows).toHaveLength(layers);
      expect(grid.outside.map((m) => m.name)).toEqual(['lm_head']);
      const rows = moduleSummary(modules);
      expect(rows.map((r) => r.kind)).toEqual([...kinds, 'lm_head']);
      expect(rows.slice(0, -1).every((r) => r.layers === layers)).toBe(true);
      const all = new Set(modules.filter((m) => m.layer !== null).map((m) => m.path));
      expect(targetModulesOf(modules, all)).toEqual(kinds);
    });
  }

  it('Phi-3: the fused modules keep their shapes (qkv 3072 → 9216, gate_up 3072 → 16384)', () => {
    const rows = moduleSummary(published('Phi-3-mini-4k-instruct'));
    expect(rows.map((r) => [r.kind, r.inFeatures, r.outFeatures])).toEqual([
      ['qkv_proj', 3072, 9216], ['o_proj', 3072, 3072], ['gate_up_proj', 3072, 16384], ['down_proj', 8192, 3072], ['lm_head', 3072, 32064],
    ]);
  });
});
