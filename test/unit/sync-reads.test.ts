import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

// The lint rule that keeps synchronous tensor reads out of main/ (they fail on webgpu), checked through the real
// eslint config so the rule cannot vanish unnoticed.
const eslint = new ESLint({ cwd: process.cwd() });

async function ruleHits(filePath: string, code: string): Promise<number> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-syntax').length;
}

describe('synchronous tensor reads', () => {
  it('are lint errors anywhere in main/, however they are spelled', async () => {
    const code = [
      "import * as tf from '@tensorflow/tfjs-core';",
      'const t = tf.scalar(1);',
      'export const a = t.dataSync();',
      'export const b = t.arraySync();',
      "export const c = t['dataSync']();",
      'export const d = t.bufferSync();',
    ].join('\n');
    expect(await ruleHits('main/engine/train/example.ts', code)).toBe(4);
    expect(await ruleHits('main/host/example.ts', code)).toBe(4);
  });

  it('leave async reads alone', async () => {
    const code = "import * as tf from '@tensorflow/tfjs-core';\nexport const a = await tf.scalar(1).data();\n";
    expect(await ruleHits('main/engine/train/example.ts', code)).toBe(0);
  });
});
