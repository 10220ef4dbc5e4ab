/**
 * A byte-level BPE tokenizer trainer (GPT-2 style) that writes a Hugging Face tokenizer.json.
 *
 * Text is split by GPT-2's pre-tokenizer regex, every piece is turned into bytes, each byte is shown as one
 * printable unicode character (GPT-2's bytes_to_unicode), and merges are learned greedily over the piece counts:
 * the most frequent adjacent pair becomes a new token until the vocabulary is full. Because all 256 bytes are in
 * the vocabulary, any text encodes and decodes back unchanged.
 */

/** GPT-2's pre-tokenizer pattern, exactly as the `tokenizers` crate's ByteLevel pre-tokenizer uses it. */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export class BpeTrainerError extends Error {
  constructor(readonly code: 'BPE_BAD_VOCAB_SIZE' | 'BPE_EMPTY_CORPUS', message: string) {
    super(message);
    this.name = 'BpeTrainerError';
  }
}

/** GPT-2's bytes_to_unicode: byte value -> a printable character that stands for it in vocab strings. */
export function byteToUnicodeTable(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  const isPrintable = new Set(printable);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = isPrintable.has(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return table;
}

export interface BpeTrainOptions {
  /** Total vocabulary size, special tokens and the 256 byte tokens included. */
  readonly vocabSize: number;
  /** Special tokens, given the first ids in this order. */
  readonly specialTokens: readonly string[];
  /** Pieces seen fewer times than this are not used to learn merges (they still encode, byte by byte). */
  readonly minPieceCount?: number;
}

export interface BpeModel {
  /** Token string (byte-level unicode form, or a special token) -> id. */
  readonly vocab: Map<string, number>;
  /** Merges in rank order, each a pair of token strings. */
  readonly merges: [string, string][];
  readonly specialTokens: readonly string[];
}

/** Counts the pre-tokenized pieces of the text (special tokens are not in the training text). */
export function countPieces(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const match of text.matchAll(GPT2_SPLIT_PATTERN)) {
      const piece = match[0];
      counts.set(piece, (counts.get(piece) ?? 0) + 1);
    }
  }
  return counts;
}

const PAIR_BASE = 1 << 16;

function pairKey(a: number, b: number): number {
  return a * PAIR_BASE + b;
}

interface Words {
  symbols: number[][];
  counts: number[];
}

function piecesToWords(pieces: Map<string, number>, minCount: number, firstByteId: number): Words {
  const encoder = new TextEncoder();
  const words: Words = { symbols: [], counts: [] };
  // Sorted so that training is deterministic whatever the insertion order of the map.
  const entries = [...pieces.entries()].filter(([, n]) => n >= minCount).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  for (const [piece, count] of entries) {
    words.symbols.push([...encoder.encode(piece)].map((b) => b + firstByteId));
    words.counts.push(count);
  }
  return words;
}

function addPairs(symbols: readonly number[], weight: number, wordIndex: number, pairCounts: Map<number, number>,
  pairWords: Map<number, Set<number>>): void {
  for (let i = 0; i + 1 < symbols.length; i++) {
    const key = pairKey(symbols[i] as number, symbols[i + 1] as number);
    pairCounts.set(key, (pairCounts.get(key) ?? 0) + weight);
    if (weight > 0) {
      let set = pairWords.get(key);
      if (!set) pairWords.set(key, (set = new Set()));
      set.add(wordIndex);
    }
  }
}

function bestPair(pairCounts: Map<number, number>): number | null {
  let best: number | null = null;
  let bestCount = 0;
  for (const [key, count] of pairCounts) {
    // Ties go to the smaller key so that the result never depends on map order.
    if (count > bestCount || (count === bestCount && best !== null && key < best)) {
      best = key;
      bestCount = count;
    }
  }
  return bestCount >= 2 ? best : null;
}

function mergeWord(symbols: readonly number[], a: number, b: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (symbols[i] === a && symbols[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(symbols[i] as number);
    }
  }
  return out;
}

/** Learns merges over the piece counts until the vocabulary reaches options.vocabSize (or no pair repeats). */
export function trainBpe(pieces: Map<string, number>, options: BpeTrainOptions): BpeModel {
  const firstByteId = options.specialTokens.length;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < firstByteId + 256 || options.vocabSize >= PAIR_BASE) {
    throw new BpeTrainerError('BPE_BAD_VOCAB_SIZE', `vocabSize must be an integer from ${firstByteId + 256} ` +
      `(special tokens + 256 bytes) to ${PAIR_BASE - 1}, got ${options.vocabSize}`);
  }
  if (pieces.size === 0) throw new BpeTrainerError('BPE_EMPTY_CORPUS', 'the training corpus has no text');
  const byteChars = byteToUnicodeTable();
  const tokenStrings: string[] = [...options.specialTokens, ...byteChars];
  const words = piecesToWords(pieces, options.minPieceCount ?? 1, firstByteId);
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  words.symbols.forEach((symbols, w) => addPairs(symbols, words.counts[w] as number, w, pairCounts, pairWords));
  const merges: [string, string][] = [];
  while (tokenStrings.length < options.vocabSize) {
    const key = bestPair(pairCounts);
    if (key === null) break;
    const a = Math.floor(key / PAIR_BASE);
    const b = key % PAIR_BASE;
    const merged = tokenStrings.length;
    const left = tokenStrings[a] as string;
    const right = tokenStrings[b] as string;
    tokenStrings.push(left + right);
    merges.push([left, right]);
    for (const w of pairWords.get(key) ?? []) {
      const before = words.symbols[w] as number[];
      const after = mergeWord(before, a, b, merged);
      if (after.length === before.length) continue; // stale entry: the pair left this word in an earlier merge
      const count = words.counts[w] as number;
      addPairs(before, -count, w, pairCounts, pairWords);
      addPairs(after, count, w, pairCounts, pairWords);
      words.symbols[w] = after;
    }
    pairCounts.delete(key);
    pairWords.delete(key);
  }
  const vocab = new Map<string, number>();
  tokenStrings.forEach((token, id) => vocab.set(token, id));
  return { vocab, merges, specialTokens: options.specialTokens };
}

/** The model as a Hugging Face tokenizer.json object (the format the `tokenizers` library reads). */
export function toTokenizerJson(model: BpeModel): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: model.specialTokens.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.vocab),
      merges: model.merges,
    },
  };
}
