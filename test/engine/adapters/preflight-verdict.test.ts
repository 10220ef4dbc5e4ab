import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preflightAdapter } from '../../../main/engine/adapters/preflight';
import { formatLayers, groupByModule, preflightDetails } from '../../../main/engine/adapters/preflight-verdict';
import { gpt2LinearSpecs, type Gpt2Shape } from './gpt2-specs';

const FIXTURE = join(import.meta.dirname, '../../fixtures/peft-gpt2-lora-c_attn-c_proj');
const BASE_CONFIG = JSON.parse(readFileSync(join(FIXTURE, 'base_model_config.json'), 'utf8')) as Gpt2Shape;

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'lorasmith-verdict-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the preflight verdict and its grouped details', () => {
  it('writes layer sets as ranges and groups one message over layers and module kinds into one line', () => {
    expect(formatLayers([4, 0, 1, 2, 2, 7, 8])).toBe('0–2, 4, 7–8');
    expect(groupByModule([
      { path: 'transformer.h.0.attn.c_attn', message: 'gone' }, { path: 'transformer.h.1.attn.c_attn', message: 'gone' },
      { path: 'transformer.h.0.mlp.c_proj', message: 'gone' }, { path: 'transformer.h.1.mlp.c_proj', message: 'gone' },
      { path: 'transformer.h.2.mlp.c_proj', message: 'other' }, { path: 'lm_head', message: 'gone' },
    ])).toEqual(['attn.c_attn, mlp.c_proj (layers 0–1): gone', 'mlp.c_proj (layer 2): other', 'lm_head: gone']);
  });

  it('fits its own base: the verdict names what it was made for and what fits', () => {
    const report = preflightAdapter(FIXTURE, { modelType: 'gpt2', linears: gpt2LinearSpecs(BASE_CONFIG), hiddenSize: 768, numLayers: 12 });
    expect(report.verdict).toBe('made for gpt2 with hidden 768; fits this gpt2 base: 36 modules (c_attn, c_proj) at rank 8');
    expect(preflightDetails(report).fits).toEqual([
      'attn.c_attn (layers 0–11): rank 8, scale 4, 768 → 2304',
      'attn.c_proj (layers 0–11): rank 8, scale 4, 768 → 768',
      'mlp.c_proj (layers 0–11): rank 8, scale 4, 3072 → 768',
    ]);
  });

  it('says why it cannot be used: another width, fewer layers, an unsupported feature', () => {
    const narrow = preflightAdapter(FIXTURE, { modelType: 'gpt2', linears: gpt2LinearSpecs({ n_embd: 64, n_layer: 12 }) });
    expect(narrow.verdict).toBe('made for gpt2 with hidden 768; this base has hidden 64: it cannot be used with this base');
    expect(preflightDetails(narrow).problems).toHaveLength(3); // 36 shape problems, one line per module kind

    const shallow = preflightAdapter(FIXTURE, { modelType: 'gpt2', linears: gpt2LinearSpecs({ n_embd: 768, n_layer: 6 }), hiddenSize: 768, numLayers: 6 });
    expect(shallow.verdict).toBe('made for gpt2 with 12 layers; this base has 6: it cannot be used with this base');
    expect(preflightDetails(shallow).problems).toEqual(['attn.c_attn, attn.c_proj, mlp.c_proj (layers 6–11): is not a linear module of this base model']);

    const dora = join(work, 'dora');
    cpSync(FIXTURE, dora, { recursive: true });
    const config = JSON.parse(readFileSync(join(dora, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dora, 'adapter_config.json'), JSON.stringify({ ...config, use_dora: true }));
    expect(preflightAdapter(dora, { modelType: 'gpt2', linears: gpt2LinearSpecs(BASE_CONFIG) }).verdict)
      .toBe('made for gpt2 with hidden 768, but DoRA (use_dora) adapters are not supported; train or export a plain LoRA adapter: it cannot be used with this base');
    expect(preflightAdapter(join(work, 'nowhere'), null).verdict).toMatch(/^not a usable PEFT LoRA adapter: .*adapter_config\.json is missing/);
  });
});
