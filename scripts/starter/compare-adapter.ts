/**
 * Base and adapter side by side on a few chat questions (greedy), as the first-run chat preview shows them:
 *   node --import ./bin/register-ts.js scripts/starter/compare-adapter.ts ADAPTER_DIR [MODEL_DIR] [question...]
 * With RAW=1 in the environment the prompts are plain text continued as they are (for raw-text adapters).
 */
import { initBackend } from '../../main/engine/backend/index';
import { loadModel } from '../../main/engine/models/registry';
import { loadTokenizer } from '../../main/engine/io/tokenizer';
import { generate } from '../../main/engine/generate/generate';
import { encodePrompt } from '../../main/engine/io/prompt';
import { loadAdaptersForGeneration } from '../../main/engine/adapters/generation';

const [adapterDir, modelDir = 'resources/starter', ...asked] = process.argv.slice(2);
if (!adapterDir) throw new Error('usage: compare-adapter.ts ADAPTER_DIR [MODEL_DIR] [question...]');
const questions = asked.length > 0 ? asked : ['What do cows give us?', 'What colour is the sea?', 'Who built the ark?'];
await initBackend('wasm');
const model = await loadModel(modelDir);
const tokenizer = await loadTokenizer(modelDir);
const reply = async (question: string) => {
  const prompt = encodePrompt(tokenizer, process.env.RAW === '1' ? question : [{ role: 'user', content: question }]);
  return (await generate(model, prompt, { maxNewTokens: 24, tokenizer })).text ?? '';
};
const base = await Promise.all(questions.map(reply));
const resident = loadAdaptersForGeneration(model, [{ dir: adapterDir, scale: 1 }]);
for (const [i, question] of questions.entries()) {
  console.log(`Q: ${question}\n  base:    ${JSON.stringify(base[i])}\n  adapter: ${JSON.stringify(await reply(question))}`);
}
resident.clear();
model.dispose();
