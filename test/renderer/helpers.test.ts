import { describe, expect, it } from 'vitest';
import { histogram, percentile } from '../../renderer/src/lib/histogram';
import { flattenLineage, lineageTree } from '../../renderer/src/lib/lineage';
import { formatBytes, formatDuration } from '../../renderer/src/lib/format';
import { formFromSettings, settingsFromForm, validateForm } from '../../renderer/src/lib/settings-form';
import { version } from './fixtures';

describe('hyper-parameter validation', () => {
  it('the defaults validate and round-trip into TrainingSettings', () => {
    const form = formFromSettings({});
    expect(validateForm(form)).toEqual({});
    const settings = settingsFromForm(form, ['q_proj', 'v_proj']);
    expect(settings.lora).toEqual({ targetModules: ['q_proj', 'v_proj'], rank: 8, alpha: 16, dropout: 0.05, useRslora: false });
    expect(settings.learningRate).toBe(2e-4);
    expect(settings.maxSteps).toBeUndefined();
  });

  it('names the field, the bad value and what is expected', () => {
    const form = { ...formFromSettings({}), rank: '0', dropout: '1', learningRate: 'fast', batchSize: '2.5', alpha: '' };
    const errors = validateForm(form);
    expect(errors.rank).toBe('rank must be a positive integer, got 0');
    expect(errors.dropout).toBe('dropout must be between 0 and 1 (exclusive), got 1');
    expect(errors.learningRate).toBe('learning rate must be a number, got "fast"');
    expect(errors.batchSize).toBe('batch size must be a positive integer, got 2.5');
    expect(errors.alpha).toBe('alpha is required');
    expect(() => settingsFromForm(form, [])).toThrow(/invalid training settings/);
  });

  it('needs epochs or max steps, and takes either', () => {
    const none = { ...formFromSettings({}), epochs: '', maxSteps: '' };
    expect(validateForm(none).epochs).toMatch(/set epochs or max steps/);
    const steps = settingsFromForm({ ...none, maxSteps: '50' }, ['q_proj']);
    expect(steps.maxSteps).toBe(50);
    expect(steps.epochs).toBeUndefined();
  });

  it('prefills from saved settings', () => {
    const form = formFromSettings({ learningRate: 1e-3, lora: { rank: 16, alpha: 32, dropout: 0, useRslora: true, targetModules: [] } });
    expect(form.rank).toBe('16');
    expect(form.useRslora).toBe(true);
    expect(form.learningRate).toBe('0.001');
  });
});

describe('histogram', () => {
  it('counts every value once, in equal-width bins covering min..max', () => {
    const values = [1, 2, 2, 3, 10, 10, 10, 40];
    const bins = histogram(values, 4);
    expect(bins.reduce((n, b) => n + b.count, 0)).toBe(values.length);
    expect(bins[0]?.from).toBe(1);
    expect(bins.at(-1)!.to).toBeGreaterThan(40);
    // width = ceil(40 / 4) = 10: [1,11) holds 7 values, [31,41) holds 40.
    expect(bins.map((b) => b.count)).toEqual([7, 0, 0, 1]);
  });

  it('percentile by the nearest-rank method', () => {
    expect(percentile([5, 1, 3, 2, 4], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(histogram([], 10)).toEqual([]);
  });
});

describe('lineage', () => {
  it('children under parents, versions in order, orphans as roots', () => {
    const versions = [version('v3', 3, 'v1'), version('v1', 1, null), version('v2', 2, 'v1'), version('v4', 4, 'gone'), version('v5', 5, 'v2')];
    const flat = flattenLineage(lineageTree(versions));
    expect(flat.map((n) => [n.version.id, n.depth])).toEqual([['v1', 0], ['v2', 1], ['v5', 2], ['v3', 1], ['v4', 0]]);
  });
});

describe('formatting', () => {
  it('bytes and durations', () => {
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(3 * 3600 + 60)).toBe('3 h 1 min');
  });
});
