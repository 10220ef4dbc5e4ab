import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { byteToUnicodeTable, countPieces, toTokenizerJson, trainBpe, BpeTrainerError } from '../../scripts/starter/bpe-trainer';
import { CHAT_TEMPLATE, SPECIAL_TOKENS, tokenizerConfigJson } from '../../scripts/starter/tokenizer-files';
import { loadTokenizer } from '../../main/engine/io/tokenizer';

const starterDir = join(import.meta.dirname, '../../resources/starter');

const SAMPLES = [
  'In the beginning God created the heaven and the earth.',
  "Don't panic: it's 3.14159 and we'll see 42 apples!",
  'Unicode: café naïve Ærøskøbing — “quotes” 東京 🦀🚀 ∑x²',
  '  leading spaces, tabs\tand\nnew lines\n\n  ',
  'verily VERILY VeRiLy \u0000 control \u007f chars',
];

/** Pair counts computed the slow, obvious way over piece byte strings (an independent reference). */
function mostFrequentPair(pieces: Map<string, number>): [string, string] {
  const table = byteToUnicodeTable();
  const counts = new Map<string, number>();
  for (const [piece, n] of pieces) {
    const chars = [...new TextEncoder().encode(piece)].map((b) => table[b] as string);
    for (let i = 0; i + 1 < chars.length; i++) {
      const key = `${chars[i]} ${chars[i + 1]}`;
      counts.set(key, (counts.get(key) ?? 0) + n);
    }
  }
  const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0] as [string, number];
  return best[0].split(' ') as [string, string];
}

describe('byte-level BPE trainer', () => {
  it('maps all 256 bytes to distinct printable characters, as GPT-2 does', () => {
    const table = byteToUnicodeTable();
    expect(new Set(table).size).toBe(256);
    expect(table[0x20]).toBe('Ġ'); // space, as in every GPT-2 vocab
    expect(table[0x0a]).toBe('Ċ'); // newline
    expect(table[0x41]).toBe('A');
  });

  it('learns the most frequent pair first and grows the vocabulary to the requested size', () => {
    const text = 'the cat sat on the mat with the hat. That thin theme then threw these there.';
    const pieces = countPieces([text]);
    const model = trainBpe(pieces, { vocabSize: 3 + 256 + 5, specialTokens: SPECIAL_TOKENS });
    expect(model.merges[0]).toEqual(mostFrequentPair(pieces));
    expect(model.vocab.size).toBe(3 + 256 + 5);
    // Training stops once no pair occurs twice, short of a vocabulary too large for the text.
    const capped = trainBpe(pieces, { vocabSize: 3 + 256 + 500, specialTokens: SPECIAL_TOKENS });
    expect(capped.vocab.size).toBeLessThan(3 + 256 + 500);
    expect(model.vocab.get('<|endoftext|>')).toBe(0);
  });

  it('writes a tokenizer.json that @huggingface/tokenizers loads and round-trips any text', () => {
    const model = trainBpe(countPieces(SAMPLES.slice(0, 2)), { vocabSize: 300, specialTokens: SPECIAL_TOKENS });
    const tokenizer = new Tokenizer(toTokenizerJson(model), tokenizerConfigJson(64));
    for (const text of SAMPLES) {
      const ids = tokenizer.encode(text).ids;
      expect(ids.every((id) => id >= 3 && id < 300)).toBe(true);
      expect(tokenizer.decode(ids)).toBe(text);
    }
    // A learned merge is used: "the" as one token is shorter than its bytes.
    expect(tokenizer.encode(' the').ids.length).toBeLessThan(4);
  });

  it('rejects a vocabulary too small for the byte alphabet', () => {
    expect(() => trainBpe(countPieces(['a b']), { vocabSize: 100, specialTokens: SPECIAL_TOKENS }))
      .toThrow(BpeTrainerError);
  });
});

describe('starter tokenizer (resources/starter)', () => {
  it('loads through the engine, has 4096 ids and round-trips unicode text', async () => {
    const tokenizer = await loadTokenizer(starterDir);
    expect(tokenizer.vocabSize).toBe(4096);
    expect(tokenizer.eosTokenIds).toEqual([0]);
    for (const text of SAMPLES) expect(tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false }))).toBe(text);
    // Common corpus words are single tokens.
    expect(tokenizer.encode(' LORD', { addSpecialTokens: false })).toHaveLength(1);
  });

  it('renders the ChatML chat template and encodes its markers as single special tokens', async () => {
    const tokenizer = await loadTokenizer(starterDir);
    expect(tokenizer.chatTemplate).toBe(CHAT_TEMPLATE);
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Who made the earth?' },
    ];
    const rendered = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(rendered).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWho made the earth?<|im_end|>\n' +
      '<|im_start|>assistant\n');
    const ids = tokenizer.encode(rendered, { addSpecialTokens: false });
    expect(ids.filter((id) => id === 1)).toHaveLength(3); // <|im_start|>
    expect(ids.filter((id) => id === 2)).toHaveLength(2); // <|im_end|>
    expect(tokenizer.decode(ids)).toBe(rendered);
  });
});
