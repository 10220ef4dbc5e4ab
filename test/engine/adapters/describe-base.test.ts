import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeBaseDir } from '../../../main/engine/adapters/describe-base';
import { loadModel } from '../../../main/engine/models/registry';
import { useCpu } from '../lora/setup';

const FIXTURES = join(import.meta.dirname, '../../fixtures');

beforeAll(useCpu);

describe('describeBaseDir (headers only) agrees with the loaded model', () => {
  for (const [name, tiedHead] of [['tiny-random-gpt2', true], ['tiny-random-llama', false]] as const) {
    it(`${name}: same module paths, shapes and orientation`, async () => {
      const dir = join(FIXTURES, name);
      const described = describeBaseDir(dir);
      const model = await loadModel(dir);
      const loaded = [...model.linears.values()].map((l) => l.spec).filter((s) => !(tiedHead && s.path === 'lm_head'));
      const pick = (s: { path: string; inFeatures: number; outFeatures: number; fanInFanOut: boolean; layer: number | null }) =>
        `${s.path} ${s.inFeatures}->${s.outFeatures} ${s.fanInFanOut} ${s.layer}`;
      expect([...described.linears].map(pick).sort()).toEqual(loaded.map(pick).sort());
      expect(described.modelType).toBe(model.config.modelType);
      model.dispose();
    });
  }
});
