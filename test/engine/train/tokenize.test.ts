import { describe, expect, it } from 'vitest';
import { chatSegments, tokenizeExamples } from '../../../main/engine/train/tokenize';
import { epochBatches, makeBatch, packExamples } from '../../../main/engine/train/batching';
import type { Example } from '../../../main/engine/train/datasets/formats';
import { charTokenizer } from './char-tokenizer';
import { loadTokenizer } from '../../../main/engine/io/tokenizer';
import { fileURLToPath } from 'node:url';

const TINY_LLAMA = fileURLToPath(new URL('../../fixtures/tiny-random-llama', import.meta.url));

const tok = charTokenizer();
const pc = (prompt: string, completion: string, line = 1): Example => ({ line, kind: 'segments', segments: [{ text: prompt, train: false }, { text: completion, train: true }] });

describe('loss masks', () => {
  it('prompt/completion: only completion tokens and EOS are targets', () => {
    const { examples } = tokenizeExamples([pc('ab', 'cd')], tok, { maxSeqLen: 32 });
    expect(examples[0]?.ids).toEqual([...tok.encode('abcd'), 1]);
    expect(examples[0]?.train).toEqual([0, 0, 1, 1, 1]);
  });
  it('trainOnPrompt makes every token a target', () => {
    const { examples } = tokenizeExamples([pc('ab', 'cd')], tok, { maxSeqLen: 32, trainOnPrompt: true });
    expect(examples[0]?.train).toEqual([1, 1, 1, 1, 1]);
  });
  it('chat: only what the template adds for each assistant turn trains', () => {
    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'yo' },
      { role: 'user', content: 'ok?' },
      { role: 'assistant', content: 'ok' },
    ] as const;
    const segments = chatSegments(tok, messages);
    expect(segments.filter((s) => s.train).map((s) => s.text)).toEqual(['yo<|end|>\n', 'ok<|end|>\n']);
    expect(segments.map((s) => s.text).join('')).toBe(tok.applyChatTemplate?.(messages, { addGenerationPrompt: false }));
    const { examples } = tokenizeExamples([{ line: 1, kind: 'chat', messages }], tok, { maxSeqLen: 500 });
    const ex = examples[0];
    const trained = (ex?.ids ?? []).filter((_, i) => ex?.train[i] === 1);
    expect(tok.decode(trained)).toBe('yo<|end|>\nok<|end|>\n');
  });
  it('a SentencePiece-style tokenizer: the ids are the whole text\'s, not a second \'▁\' opening the completion', async () => {
    // Llama's tokenizer.json prepends '▁' to every text it encodes: " 1." alone is "▁▁" "1" ".", after its prompt
    // "▁" "1" "." (ids from the fixture's vocabulary: ▁▁ 259, ▁ 29871, 1 29896, . 29889; </s> 2).
    const llama = await loadTokenizer(TINY_LLAMA);
    expect(llama.encode(' 1.', { addSpecialTokens: false })).toEqual([259, 29896, 29889]);
    const prompt = 'Q0: what is 0 plus 1?';
    const { examples } = tokenizeExamples([pc(prompt, ' 1.')], llama, { maxSeqLen: 64 });
    const ex = examples[0];
    expect(ex?.ids).toEqual([1, ...llama.encode(`${prompt} 1.`, { addSpecialTokens: false }), 2]);
    expect((ex?.ids ?? []).filter((_, i) => ex?.train[i] === 1)).toEqual([29871, 29896, 29889, 2]);
    expect(ex?.train.filter((v) => v === 0)).toHaveLength(1 + llama.encode(prompt, { addSpecialTokens: false }).length);
  });
  it('a token merged across a segment boundary goes to the later segment', () => {
    // A tokenizer that merges "ab" into one token: prompt "xa" + completion "bc" encodes whole as x, ab, c.
    const merging = { ...tok, encode: (text: string) => tok.encode(text.replace(/ab/g, '#')) };
    const { examples } = tokenizeExamples([pc('xa', 'bc')], merging, { maxSeqLen: 16 });
    expect(examples[0]?.ids).toEqual([...tok.encode('x#c'), 1]);
    expect(examples[0]?.train).toEqual([0, 1, 1, 1]);
  });
  it('truncates to maxSeqLen and reports it; skips (and reports) examples left with no target', () => {
    const { examples, report } = tokenizeExamples([pc('abcdef', 'gh', 3), pc('a', 'bc', 4), pc('', 'x', 5)], tok, { maxSeqLen: 4 });
    expect(examples.map((e) => e.line)).toEqual([4, 5]);
    expect(examples[0]?.ids).toEqual(tok.encode('abc').concat(1));
    expect(report.truncated).toBe(1);
    expect(report.truncatedTokens).toBe(5);
    expect(report.skipped).toEqual([{ line: 3, message: 'no completion tokens within maxSeqLen 4' }]);
    expect(report.targetTokens).toBe(3 + 1);
    expect(() => tokenizeExamples([], tok, { maxSeqLen: 1 })).toThrow('maxSeqLen must be an integer of at least 2, got 1');
  });
});

describe('batches', () => {
  it('labels are the next token; padding and masked tokens weigh 0', () => {
    const { examples } = tokenizeExamples([pc('ab', 'c'), pc('a', 'bcd')], tok, { maxSeqLen: 16 });
    const batch = makeBatch(examples, 0);
    const [a, b, c, d] = tok.encode('abcd') as [number, number, number, number];
    expect(batch.seqLen).toBe(5);
    expect([...batch.inputs]).toEqual([a, b, c, 1, 0, a, b, c, d, 1]);
    expect([...batch.labels]).toEqual([b, c, 1, 0, 0, b, c, d, 1, 0]);
    expect([...batch.weights]).toEqual([0, 1, 1, 0, 0, 1, 1, 1, 1, 0]);
    expect(batch.tokens).toBe(9);
  });
  it('packing fills rows of maxSeqLen, keeping each token\'s mask', () => {
    const { examples } = tokenizeExamples([pc('ab', 'c'), pc('d', 'ef'), pc('g', 'hi')], tok, { maxSeqLen: 16 });
    const rows = packExamples(examples, 5);
    expect(rows.map((r) => r.ids.length)).toEqual([5, 5, 2]);
    expect(rows.flatMap((r) => r.train)).toEqual(examples.flatMap((e) => e.train));
  });
  it('epoch order is a seeded permutation, different per epoch', () => {
    const e0 = epochBatches(10, 3, 7, 0);
    expect(e0.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(e0.flat().sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(epochBatches(10, 3, 7, 0)).toEqual(e0);
    expect(epochBatches(10, 3, 7, 1)).not.toEqual(e0);
  });
});
