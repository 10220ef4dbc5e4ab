/**
 * Tokenizers between GGUF metadata (tokenizer.ggml.*) and Hugging Face's tokenizer.json, both ways:
 *   - "gpt2" (byte-level BPE: GPT-2, Llama 3, Qwen2): tokens, merges, and a pre-tokenizer regex named by
 *     tokenizer.ggml.pre ('llama-bpe', 'qwen2', 'gpt-2'...);
 *   - "llama" (SentencePiece BPE with byte fallback: Llama 2, TinyLlama, Mistral v0.1): tokens and scores, where
 *     the merge order is the merged token's score (highest first), as transformers' converter derives it.
 * Special tokens are token_type CONTROL (3) / USER_DEFINED (4) in GGUF and added_tokens in tokenizer.json.
 */
import { ModelIoError } from './errors';
import type { GgufFile } from './gguf';
import { kv, type GgufWriteEntry } from './gguf-write';

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/**
 * Pre-tokenizer regexes by tokenizer.ggml.pre, as the models' own tokenizer.json files write them (llama.cpp
 * identifies the same pre-tokenizers by these names).
 */
const PRE_TOKENIZER_REGEX: Readonly<Record<string, string>> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
/** Names llama.cpp accepts for the same pre-tokenizers. */
const PRE_ALIASES: Readonly<Record<string, string>> = { llama3: 'llama-bpe', 'llama-v3': 'llama-bpe', 'deepseek-r1-qwen': 'qwen2', default: 'gpt-2' };
/** GPT-2's own split, built into the ByteLevel pre-tokenizer (use_regex: true). */
const BYTE_LEVEL_PRE = 'gpt-2';

export type TokenizerJson = Record<string, unknown>;

export interface RebuiltTokenizer {
  /** A tokenizer.json object for @huggingface/tokenizers. */
  readonly tokenizerJson: TokenizerJson;
  /** tokenizer_config.json fields: special tokens, add_bos_token, chat_template. */
  readonly tokenizerConfig: Record<string, unknown>;
}

function strings(file: GgufFile, key: string): string[] {
  const list = file.array(key);
  if (!list || !list.every((s) => typeof s === 'string')) {
    throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: '${key}' must be a list of strings`);
  }
  return list as string[];
}

function numbers(file: GgufFile, key: string, length: number): number[] | null {
  const list = file.array(key);
  if (!list) return null;
  if (list.length !== length || !list.every((x) => typeof x === 'number')) {
    throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: '${key}' must hold ${length} numbers, one per token`);
  }
  return list as number[];
}

function addedToken(id: number, content: string, special: boolean): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** TemplateProcessing that adds BOS / EOS as the GGUF says (llama.cpp's add_bos_token / add_eos_token). */
function postProcessor(tokens: readonly string[], bos: number | null, eos: number | null): Record<string, unknown> | null {
  const specials: Record<string, unknown> = {};
  const piece = (id: number) => {
    const token = tokens[id] as string;
    specials[token] = { id: token, ids: [id], tokens: [token] };
    return { SpecialToken: { id: token, type_id: 0 } };
  };
  const single = [...(bos !== null ? [piece(bos)] : []), { Sequence: { id: 'A', type_id: 0 } }, ...(eos !== null ? [piece(eos)] : [])];
  if (bos === null && eos === null) return null;
  return { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: specials };
}

/** SentencePiece's merges: every split of a token into two tokens, the merged token's score deciding the order. */
function mergesFromScores(tokens: readonly string[], scores: readonly number[], types: readonly number[] | null): string[][] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const candidates: { left: string; right: string; score: number; id: number; l: number; r: number }[] = [];
  tokens.forEach((token, id) => {
    const type = types?.[id] ?? TOKEN_TYPE.NORMAL;
    if (type !== TOKEN_TYPE.NORMAL && type !== TOKEN_TYPE.USER_DEFINED) return;
    const chars = [...token];
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('');
      const right = chars.slice(k).join('');
      const l = ids.get(left);
      const r = ids.get(right);
      if (l !== undefined && r !== undefined) candidates.push({ left, right, score: scores[id] as number, id, l, r });
    }
  });
  candidates.sort((a, b) => b.score - a.score || a.id - b.id || a.l - b.l || a.r - b.r);
  return candidates.map((c) => [c.left, c.right]);
}

/** The special token id `key` names, checked against the vocabulary. */
function specialId(file: GgufFile, key: string, size: number): number | null {
  if (!file.has(key)) return null;
  const id = file.number(key);
  if (!Number.isInteger(id) || id < 0 || id >= size) throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: '${key}' is ${id}, outside the ${size}-token vocabulary`);
  return id;
}

/** A tokenizer.json and tokenizer_config.json rebuilt from a GGUF's tokenizer.ggml.* metadata. */
export function tokenizerFromGguf(file: GgufFile): RebuiltTokenizer {
  const model = file.string('tokenizer.ggml.model', '');
  if (model !== 'gpt2' && model !== 'llama') {
    throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: tokenizer.ggml.model '${model}' is not supported (gpt2 byte-level BPE and llama SentencePiece are)`);
  }
  const tokens = strings(file, 'tokenizer.ggml.tokens');
  const types = numbers(file, 'tokenizer.ggml.token_type', tokens.length);
  const n = tokens.length;
  const bos = specialId(file, 'tokenizer.ggml.bos_token_id', n);
  const eos = specialId(file, 'tokenizer.ggml.eos_token_id', n);
  const unk = specialId(file, 'tokenizer.ggml.unknown_token_id', n);
  const pad = specialId(file, 'tokenizer.ggml.padding_token_id', n);
  const pre = model === 'gpt2' ? file.string('tokenizer.ggml.pre', 'default') : null;
  // llama.cpp's defaults: SentencePiece and the Llama 3 pre-tokenizer add BOS; the file's own flags win.
  const addBos = file.bool('tokenizer.ggml.add_bos_token', model === 'llama' || (pre !== null && (PRE_ALIASES[pre] ?? pre) === 'llama-bpe'));
  const addEos = file.bool('tokenizer.ggml.add_eos_token', false);
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  tokens.forEach((token, id) => {
    if (!(token in vocab)) vocab[token] = id;
    const type = types?.[id] ?? TOKEN_TYPE.NORMAL;
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED || (type === TOKEN_TYPE.UNKNOWN && model === 'llama')) {
      added.push(addedToken(id, token, type !== TOKEN_TYPE.USER_DEFINED));
    }
  });
  const post = postProcessor(tokens, addBos ? bos : null, addEos ? eos : null);
  const json: TokenizerJson = model === 'gpt2' ? byteLevelJson(file, vocab, pre as string) : sentencePieceJson(file, tokens, vocab, types, unk);
  Object.assign(json, { version: '1.0', truncation: null, padding: null, added_tokens: added, post_processor: post });
  const token = (id: number | null) => (id === null ? null : tokens[id]);
  const chat = file.has('tokenizer.chat_template') ? file.string('tokenizer.chat_template') : null;
  const tokenizerConfig: Record<string, unknown> = {
    bos_token: token(bos),
    eos_token: token(eos),
    unk_token: token(unk),
    pad_token: token(pad),
    add_bos_token: addBos,
    add_eos_token: addEos,
    clean_up_tokenization_spaces: false,
    ...(chat !== null ? { chat_template: chat } : {}),
  };
  return { tokenizerJson: json, tokenizerConfig };
}

function byteLevelJson(file: GgufFile, vocab: Record<string, number>, preName: string): TokenizerJson {
  const pre = PRE_ALIASES[preName] ?? preName;
  const regex = PRE_TOKENIZER_REGEX[pre];
  if (regex === undefined && pre !== BYTE_LEVEL_PRE) {
    const known = [...Object.keys(PRE_TOKENIZER_REGEX), BYTE_LEVEL_PRE, ...Object.keys(PRE_ALIASES)].join(', ');
    throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: pre-tokenizer '${preName}' (tokenizer.ggml.pre) is not supported (supported: ${known})`);
  }
  const merges = file.array('tokenizer.ggml.merges');
  if (!merges || !merges.every((m) => typeof m === 'string' && m.indexOf(' ', 1) > 0)) {
    throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: a gpt2 tokenizer needs tokenizer.ggml.merges ("left right" strings)`);
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: regex === undefined };
  return {
    normalizer: null,
    pre_tokenizer: regex === undefined
      ? byteLevel
      : { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, byteLevel] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ignore_merges: pre === 'llama-bpe', vocab,
      merges: (merges as string[]).map((m) => {
        const at = m.indexOf(' ', 1);
        return [m.slice(0, at), m.slice(at + 1)];
      }),
    },
  };
}

function sentencePieceJson(file: GgufFile, tokens: readonly string[], vocab: Record<string, number>, types: readonly number[] | null, unk: number | null): TokenizerJson {
  const scores = numbers(file, 'tokenizer.ggml.scores', tokens.length);
  if (!scores) throw new ModelIoError('INVALID_TOKENIZER', `${file.path}: a llama (SentencePiece) tokenizer needs tokenizer.ggml.scores`);
  const prefix = file.bool('tokenizer.ggml.add_space_prefix', true);
  return {
    normalizer: {
      type: 'Sequence',
      normalizers: [...(prefix ? [{ type: 'Prepend', prepend: '▁' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
    },
    pre_tokenizer: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: unk === null ? null : tokens[unk], continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: mergesFromScores(tokens, scores, types),
    },
  };
}

// ---- tokenizer.json -> GGUF ----

export interface TokenizerSource {
  readonly tokenizerJson: TokenizerJson;
  readonly tokenizerConfig: Readonly<Record<string, unknown>>;
  readonly chatTemplate: string | null;
  /** Embedding rows: ids the tokenizer lacks up to here become [PAD<id>] tokens, as llama.cpp's converter writes. */
  readonly vocabSize: number;
  /** Special ids from the model's config where the tokenizer files do not name them. */
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

function tokenText(spec: unknown): string | null {
  if (typeof spec === 'string') return spec;
  if (spec && typeof spec === 'object' && typeof (spec as { content?: unknown }).content === 'string') return (spec as { content: string }).content;
  return null;
}

/** 'gpt-2', 'llama-bpe', 'qwen2' from the pre-tokenizer tokenizer.json describes; null when llama.cpp would not know it. */
function preTokenizerName(pre: unknown): string | null {
  const steps = pre && typeof pre === 'object' ? ((pre as { pretokenizers?: unknown[] }).pretokenizers ?? [pre]) : [];
  for (const step of steps as { type?: string; pattern?: { Regex?: string }; use_regex?: boolean }[]) {
    if (step.type === 'Split' && typeof step.pattern?.Regex === 'string') {
      const name = Object.entries(PRE_TOKENIZER_REGEX).find(([, r]) => r === step.pattern?.Regex)?.[0];
      return name ?? null;
    }
    if (step.type === 'ByteLevel' && step.use_regex !== false) return BYTE_LEVEL_PRE;
  }
  return null;
}

/** True when the post-processor adds `token` in front of (or after) a single sequence. */
function templateAdds(json: TokenizerJson, token: string | null, where: 'first' | 'last'): boolean | null {
  const post = json.post_processor as { type?: string; single?: { SpecialToken?: { id?: string } }[]; processors?: unknown[] } | null | undefined;
  if (!post || token === null) return null;
  const template = post.type === 'Sequence' ? (post.processors as typeof post[] | undefined)?.find((p) => p?.type === 'TemplateProcessing') : post;
  if (template?.type !== 'TemplateProcessing' || !template.single) return false;
  const item = where === 'first' ? template.single[0] : template.single[template.single.length - 1];
  return item?.SpecialToken?.id === token;
}

/** tokenizer.ggml.* metadata (and the chat template) for a tokenizer.json that llama.cpp can run. */
export function ggufTokenizerMetadata(source: TokenizerSource, where: string): GgufWriteEntry[] {
  const json = source.tokenizerJson;
  const model = json.model as { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[]; byte_fallback?: boolean; unk_token?: string | null };
  if (model?.type !== 'BPE' || !model.vocab) {
    throw new ModelIoError('INVALID_TOKENIZER', `${where}: a ${String(model?.type)} tokenizer cannot be written as GGUF yet (BPE tokenizers can)`);
  }
  const sentencePiece = model.byte_fallback === true;
  const pre = sentencePiece ? null : preTokenizerName(json.pre_tokenizer);
  if (!sentencePiece && pre === null) {
    throw new ModelIoError('INVALID_TOKENIZER', `${where}: the tokenizer's pre-tokenizer is not one llama.cpp knows (Llama 3, Qwen2 or GPT-2 style); the GGUF would tokenize differently`);
  }
  const added = new Map<number, { content: string; special: boolean }>();
  for (const t of (json.added_tokens ?? []) as { id: number; content: string; special?: boolean }[]) added.set(t.id, { content: t.content, special: t.special === true });
  const byId = new Map<number, string>();
  for (const [token, id] of Object.entries(model.vocab)) byId.set(id, token);
  for (const [id, t] of added) byId.set(id, t.content);
  let size = source.vocabSize;
  for (const id of byId.keys()) size = Math.max(size, id + 1);
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < size; id++) {
    const token = byId.get(id);
    const a = added.get(id);
    tokens.push(token ?? `[PAD${id}]`);
    if (token === undefined) types.push(TOKEN_TYPE.UNUSED);
    else if (a) types.push(a.special ? (sentencePiece && token === model.unk_token ? TOKEN_TYPE.UNKNOWN : TOKEN_TYPE.CONTROL) : TOKEN_TYPE.USER_DEFINED);
    else if (sentencePiece && /^<0x[0-9A-Fa-f]{2}>$/.test(token)) types.push(TOKEN_TYPE.BYTE);
    else if (sentencePiece && token === model.unk_token) types.push(TOKEN_TYPE.UNKNOWN);
    else types.push(TOKEN_TYPE.NORMAL);
  }
  const merges = (model.merges ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  const config = source.tokenizerConfig;
  const idOf = (spec: unknown) => {
    const text = tokenText(spec);
    const id = text === null ? undefined : tokens.indexOf(text);
    return id === undefined || id < 0 ? null : id;
  };
  const bos = idOf(config.bos_token) ?? source.bosTokenId;
  const eos = idOf(config.eos_token) ?? source.eosTokenIds[0] ?? null;
  const unk = idOf(config.unk_token);
  const pad = idOf(config.pad_token) ?? source.padTokenId;
  const bosText = bos === null ? null : (tokens[bos] as string);
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : (templateAdds(json, bosText, 'first') ?? false);
  const eosText = eos === null ? null : (tokens[eos] as string);
  const addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : (templateAdds(json, eosText, 'last') ?? false);
  const out: GgufWriteEntry[] = [
    kv.string('tokenizer.ggml.model', sentencePiece ? 'llama' : 'gpt2'),
    kv.string('tokenizer.ggml.pre', pre ?? 'default'),
    kv.strings('tokenizer.ggml.tokens', tokens),
    kv.i32s('tokenizer.ggml.token_type', types),
  ];
  if (sentencePiece) {
    // The merge that first makes a token sets its score: earlier merges score higher, as SentencePiece's do.
    const scores = new Array<number>(size).fill(0);
    const index = new Map(tokens.map((t, i) => [t, i]));
    merges.forEach((m, rank) => {
      const id = index.get(m.replace(' ', ''));
      if (id !== undefined && scores[id] === 0) scores[id] = -(rank + 1);
    });
    out.push(kv.f32s('tokenizer.ggml.scores', scores));
    const prepends = JSON.stringify(json.normalizer ?? json.pre_tokenizer ?? {}).includes('"Prepend"') || JSON.stringify(json.pre_tokenizer ?? {}).includes('"prepend_scheme":"always"');
    out.push(kv.bool('tokenizer.ggml.add_space_prefix', prepends));
  } else {
    out.push(kv.strings('tokenizer.ggml.merges', merges));
  }
  if (bos !== null) out.push(kv.u32('tokenizer.ggml.bos_token_id', bos));
  if (eos !== null) out.push(kv.u32('tokenizer.ggml.eos_token_id', eos));
  if (unk !== null) out.push(kv.u32('tokenizer.ggml.unknown_token_id', unk));
  if (pad !== null) out.push(kv.u32('tokenizer.ggml.padding_token_id', pad));
  out.push(kv.bool('tokenizer.ggml.add_bos_token', addBos), kv.bool('tokenizer.ggml.add_eos_token', addEos));
  if (source.chatTemplate !== null) out.push(kv.string('tokenizer.chat_template', source.chatTemplate));
  return out;
}
