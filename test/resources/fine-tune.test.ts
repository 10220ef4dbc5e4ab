import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../main/engine/backend/index';
import { nativeOptionsFromEnv } from '../../main/engine/backend/native/index';
import { loadModel } from '../../main/engine/models/registry';
import { loadTokenizer, type ModelTokenizer } from '../../main/engine/io/tokenizer';
import { generate } from '../../main/engine/generate/generate';
import { runTraining } from '../../main/engine/train/run';
import { loadAdaptersForGeneration } from '../../main/engine/adapters/generation';
import { encodePrompt, renderChat } from '../../main/engine/io/prompt';
import type { CausalLM } from '../../main/engine/models/types';

const root = join(import.meta.dirname, '../..');
const starterDir = join(root, 'resources/starter');
const samplePath = join(root, 'resources/samples/verily-chat.jsonl');

interface ChatRow {
  messages: { role: 'user' | 'assistant'; content: string }[];
}
const rows = readFileSync(samplePath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ChatRow);
// The last ten questions are never trained on: loss and output are measured on them.
const trainRows = rows.slice(0, -10);
const heldOut = rows.slice(-10);

let model: CausalLM;
let tokenizer: ModelTokenizer;
let workDir: string;
beforeAll(async () => {
  await initBackend('wasm', { native: nativeOptionsFromEnv(process.env) });
  model = await loadModel(starterDir);
  tokenizer = await loadTokenizer(starterDir);
  workDir = mkdtempSync(join(tmpdir(), 'lorasmith-finetune-'));
});
afterAll(() => {
  model?.dispose();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** Mean NLL (float64, computed here from the logits) of the assistant replies of held-out chats. */
function heldOutLoss(): number {
  let total = 0;
  let count = 0;
  for (const row of heldOut) {
    // As training encodes it: the whole chat rendered, BOS by the tokenizer's policy (the starter's: none).
    const prompt = encodePrompt(tokenizer, row.messages.slice(0, 1));
    const ids = encodePrompt(tokenizer, renderChat(tokenizer, row.messages, false));
    const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).arraySync() as number[][][]);
    for (let t = prompt.length; t < ids.length; t++) {
      const row = logits[0]?.[t - 1] as number[];
      const max = Math.max(...row);
      const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      total += logSum - (row[ids[t] as number] as number);
      count++;
    }
  }
  return total / count;
}

async function replyTo(question: string): Promise<string> {
  const result = await generate(model, encodePrompt(tokenizer, [{ role: 'user', content: question }]), { maxNewTokens: 16, tokenizer });
  return result.text ?? '';
}

describe('a short LoRA fine-tune of the starter model on a sample dataset', () => {
  it('lowers the held-out loss and changes the greedy replies towards the taught form', async () => {
    const question = (heldOut[0] as ChatRow).messages[0]?.content as string;
    const lossBefore = heldOutLoss();
    const replyBefore = await replyTo(question);
    const dataPath = join(workDir, 'train.jsonl');
    writeFileSync(dataPath, trainRows.map((r) => JSON.stringify(r)).join('\n') + '\n');

    const result = await runTraining({
      model,
      tokenizer,
      base: { nameOrPath: 'lorasmith-starter', contentHash: null },
      data: { path: dataPath },
      settings: {
        valSplit: 0, lora: { targetModules: 'all-linear', rank: 8, alpha: 16, dropout: 0 },
        maxSteps: 40, batchSize: 4, learningRate: 3e-3, scheduler: 'constant', seed: 7, maxSeqLen: 96,
      },
      outDir: join(workDir, 'adapter'),
    });
    expect(result.status).toBe('completed');
    expect(existsSync(join(workDir, 'adapter', 'adapter_config.json'))).toBe(true);

    // The adapter as written (PEFT files), loaded back onto the base the way the chat preview does.
    const resident = loadAdaptersForGeneration(model, [{ dir: join(workDir, 'adapter'), scale: 1 }]);
    let lossAfter: number;
    let replyAfter: string;
    try {
      lossAfter = heldOutLoss();
      replyAfter = await replyTo(question);
    } finally {
      resident.clear();
    }
    // Back on the base alone, the model answers as before.
    expect(await replyTo(question)).toBe(replyBefore);
    expect(lossAfter, `held-out loss ${lossBefore} -> ${lossAfter}`).toBeLessThan(lossBefore - 0.5);
    expect(replyAfter).not.toBe(replyBefore);
    expect(replyAfter, `reply after: ${replyAfter}`).toMatch(/^Verily,/);
  }, 240_000);
});
