/**
 * The LoRA-targetable linear modules of a GPT-2 of a given config.json shape (Conv1D: weights stored [in, out]),
 * written out here from the transformers GPT2 module tree so preflight tests need no model weights at all.
 */
import type { LinearSpec } from '../../../main/engine/models/types';

export interface Gpt2Shape {
  readonly n_embd: number;
  readonly n_layer: number;
  readonly n_inner?: number | null;
}

export function gpt2LinearSpecs(config: Gpt2Shape): LinearSpec[] {
  const d = config.n_embd;
  const inner = config.n_inner ?? 4 * d;
  const specs: LinearSpec[] = [];
  const add = (layer: number, sub: string, name: string, inFeatures: number, outFeatures: number, group: 'attention' | 'mlp') =>
    specs.push({ path: `transformer.h.${layer}.${sub}.${name}`, name, layer, inFeatures, outFeatures, groups: [group], fanInFanOut: true });
  for (let i = 0; i < config.n_layer; i++) {
    add(i, 'attn', 'c_attn', d, 3 * d, 'attention');
    add(i, 'attn', 'c_proj', d, d, 'attention');
    add(i, 'mlp', 'c_fc', d, inner, 'mlp');
    add(i, 'mlp', 'c_proj', inner, d, 'mlp');
  }
  return specs;
}
