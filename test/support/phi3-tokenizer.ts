/**
 * Phi-3's tokenizer as test/fixtures/phi3-tokenizer describes it: the upstream tiny Llama's SentencePiece pieces
 * (Llama 2's 32,000) plus Phi-3's control tokens (<|endoftext|>, <|user|>, <|end|>... at 32000..32010) and its
 * tokenizer_config.json with the chat template. Written into a model folder `dir`.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FIXTURES = join(import.meta.dirname, '../fixtures');

export function writePhi3Tokenizer(dir: string): void {
  const llama = JSON.parse(readFileSync(join(FIXTURES, 'tiny-random-llama', 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
  const added = JSON.parse(readFileSync(join(FIXTURES, 'phi3-tokenizer', 'added_tokens.json'), 'utf8')) as unknown[];
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...llama, added_tokens: [...llama.added_tokens, ...added] }));
  copyFileSync(join(FIXTURES, 'phi3-tokenizer', 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
}
