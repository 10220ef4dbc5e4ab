/**
 * An adapter made by PEFT itself (0.21.0, with transformers 5.17 and torch 2.11, on the device machine: LoRA r=4 on
 * all seven linear kinds of the starter model, init_lora_weights=False so B is not zero) loads through the engine's
 * PEFT import and gives PEFT's own logits. test/fixtures/README.md says how the fixture was made.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { logitsOf, maxAbsDiff } from '../../support/logits';
import { useCpu } from '../lora/setup';

const ROOT = join(import.meta.dirname, '../../..');
const FIXTURE = join(ROOT, 'test/fixtures/peft-0.21-starter-lora');
const expected = JSON.parse(readFileSync(join(FIXTURE, 'peft_logits.json'), 'utf8')) as {
  ids: number[][]; lastPositionLogits: number[][];
};

/** The logits of each row's last position, [B·V] flattened. */
function lastPositions(all: Float32Array, rows: number, t: number): Float32Array {
  const vocab = all.length / (rows * t);
  const out = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) out.set(all.subarray((r * t + t - 1) * vocab, (r * t + t) * vocab), r * vocab);
  return out;
}

describe('a PEFT-made adapter on the starter model', () => {
  let model: CausalLM;
  beforeAll(async () => {
    await useCpu();
    model = await loadModel(join(ROOT, 'resources/starter'));
  });
  afterAll(() => model.dispose());

  it('loads through the PEFT import and gives PEFT\'s logits', async () => {
    const adapters = new ResidentAdapters(model);
    const info = adapters.loadFromDir('peft-made', FIXTURE);
    expect(info.config.rank).toBe(4);
    expect(info.config.alpha).toBe(8);
    const t = expected.ids[0]?.length ?? 0;
    const want = expected.lastPositionLogits.flat();
    const base = lastPositions(await logitsOf(model, expected.ids), expected.ids.length, t);
    adapters.use('peft-made');
    const adapted = lastPositions(await logitsOf(model, expected.ids), expected.ids.length, t);
    expect(maxAbsDiff(base, want)).toBeGreaterThan(1); // the adapter changes the outputs: a no-op would not pass
    expect(maxAbsDiff(adapted, want)).toBeLessThan(1e-4);
    adapters.use(null);
    adapters.unload('peft-made');
  });
});
