import { describe, expect, it } from 'vitest';
import { assessTraining, proposeTraining, trainRecordsOf } from '../../../main/engine/train/proposal';

const STARTER = 4_262_144; // resources/starter's parameter count

const settings = (over: Partial<Parameters<typeof assessTraining>[1]> = {}) => ({
  learningRate: 2e-4, epochs: 3, batchSize: 4, gradAccum: 1, valSplit: 0.1 as number | 'auto',
  lora: { rank: 8, alpha: 16, useRslora: false }, ...over,
});

describe('the proposal rule', () => {
  it('scales the learning rate with the square root of the model size, within 1e-4 and 3e-3', () => {
    expect(proposeTraining({ parameterCount: STARTER, records: 60 }).learningRate).toBe(0.0029);
    expect(proposeTraining({ parameterCount: 494_032_768, records: 60 }).learningRate).toBe(0.00027); // Qwen2.5-0.5B
    expect(proposeTraining({ parameterCount: 3e9, records: 60 }).learningRate).toBe(0.00011);
    expect(proposeTraining({ parameterCount: 8e9, records: 60 }).learningRate).toBe(0.0001);
    expect(proposeTraining({ parameterCount: 1e5, records: 60 }).learningRate).toBe(0.003);
  });

  it('takes 3 passes over the training records, at least 100 and at most 2000 steps; rank 16 from 5000 records', () => {
    expect(proposeTraining({ parameterCount: STARTER, records: 60 })).toMatchObject({ maxSteps: 100, targets: 'all-linear', rank: 8, alpha: 16 });
    expect(proposeTraining({ parameterCount: STARTER, records: 1000 }).maxSteps).toBe(3 * Math.ceil(900 / 4));
    expect(proposeTraining({ parameterCount: STARTER, records: 50_000 })).toMatchObject({ maxSteps: 2000, rank: 16, alpha: 32 });
    expect(trainRecordsOf(60, 0.1)).toBe(54);
    expect(trainRecordsOf(9, 'auto')).toBe(9);
  });

  it('warns that the old wizard defaults (2e-4 for 3 epochs: 42 steps) are too weak to move the loss', () => {
    const effect = assessTraining({ parameterCount: STARTER, records: 60 }, settings());
    expect(effect.steps).toBe(42);
    expect(effect.passes).toBeCloseTo(42 * 4 / 54, 10);
    expect(effect.strength).toBeCloseTo((2e-4 * 42 * 2) / (0.0029 * 100 * 2), 10);
    expect(effect.warnings).toHaveLength(1);
    expect(effect.warnings[0]).toContain('Too weak to move the loss');
  });

  it('does not warn about its own proposal; warns about less than one pass and a rate far above the proposal', () => {
    const p = proposeTraining({ parameterCount: STARTER, records: 60 });
    expect(assessTraining({ parameterCount: STARTER, records: 60 }, settings({ learningRate: p.learningRate, maxSteps: p.maxSteps })).warnings).toEqual([]);
    const few = assessTraining({ parameterCount: 494_032_768, records: 10_000 }, settings({ learningRate: 3e-4, maxSteps: 2000 }));
    expect(few.warnings).toEqual([expect.stringMatching(/^Less than one pass over the data: about 8000 of 9000 training records/)]);
    const hot = assessTraining({ parameterCount: 494_032_768, records: 60 }, settings({ learningRate: 3e-3, maxSteps: 100 }));
    expect(hot.warnings).toEqual([expect.stringMatching(/^The learning rate is 11× the proposal's 0\.00027/)]);
  });
});
