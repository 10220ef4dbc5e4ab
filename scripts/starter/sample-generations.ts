/** Prints greedy continuations of a few prompts from a model folder: npx tsx scripts/starter/sample-generations.ts DIR */
import { initBackend } from '../../main/engine/backend/index';
import { loadModel } from '../../main/engine/models/registry';
import { loadTokenizer } from '../../main/engine/io/tokenizer';
import { generate } from '../../main/engine/generate/generate';

const dir = process.argv[2] ?? 'resources/starter';
await initBackend('cpu');
const model = await loadModel(dir);
const tokenizer = await loadTokenizer(dir);
for (const prompt of ['And the LORD said unto', 'In the beginning', 'Blessed are they that', 'And the king']) {
  const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
  const result = await generate(model, [0, ...ids], { maxNewTokens: 40, tokenizer, repetitionPenalty: 1.1 });
  console.log(`${prompt} | ${JSON.stringify(result.text)}`);
}
model.dispose();
