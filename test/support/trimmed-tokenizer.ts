/**
 * A family's real tokenizer cut down to its first `size` ids, for model folders whose embedding should stay small
 * (a 262k-row Gemma table makes every training step and every file write slow): the vocabulary entries with ids
 * below `size`, the merges whose two parts and result all survive (byte-level BPE ids follow merge order, so the
 * kept merges build exactly the kept tokens), and the added tokens renumbered from `size` on where their ids lay
 * beyond it. Pieces that lose their merges fall back to smaller pieces (or bytes), so every text still encodes;
 * the chat template and the tokenizer's own settings are the family's, unchanged.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface AddedToken {
  id: number;
  content: string;
}

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: AddedToken[];
  post_processor?: unknown;
}

/** Writes tokenizer.json and tokenizer_config.json trimmed to `size` ids into `to`; returns the vocabulary size. */
export function writeTrimmedTokenizer(from: string, to: string, size: number): number {
  const tokenizer = JSON.parse(readFileSync(join(from, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const config = JSON.parse(readFileSync(join(from, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const vocab = Object.fromEntries(Object.entries(tokenizer.model.vocab).filter(([, id]) => id < size));
  const merges = tokenizer.model.merges.filter((merge) => {
    const [a, b] = typeof merge === 'string' ? (merge.split(' ') as [string, string]) : merge;
    return a in vocab && b in vocab && `${a}${b}` in vocab;
  });
  const renumbered = new Map<number, number>();
  let next = size;
  const added = tokenizer.added_tokens.flatMap((t) => {
    if (t.id < size) return [t];
    // Only the special tokens templates and generation use; the hundreds of unused slots are dropped.
    if (!/^<\|[^|]+\|>$|^<(start|end)_of_turn>$/.test(t.content)) return [];
    renumbered.set(t.id, next);
    return [{ ...t, id: next++ }];
  });
  const decoder = (config.added_tokens_decoder ?? {}) as Record<string, unknown>;
  const keptDecoder = Object.fromEntries(
    Object.entries(decoder).flatMap(([id, entry]): [string, unknown][] => {
      const n = Number(id);
      if (n < size) return [[id, entry]];
      const moved = renumbered.get(n);
      return moved === undefined ? [] : [[String(moved), entry]];
    }),
  );
  const text = JSON.stringify({ ...tokenizer, model: { ...tokenizer.model, vocab, merges }, added_tokens: added });
  // Ids written inside the post-processor (BOS / EOS) move with their tokens.
  const moved = [...renumbered].reduce((s, [old, now]) => s.replaceAll(`"ids":[${old}]`, `"ids":[${now}]`), text);
  writeFileSync(join(to, 'tokenizer.json'), moved);
  writeFileSync(join(to, 'tokenizer_config.json'), JSON.stringify({ ...config, added_tokens_decoder: keptDecoder }));
  return next;
}
