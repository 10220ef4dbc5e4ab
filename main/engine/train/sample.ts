/**
 * Sample generations during training: at each evaluation the loop can ask for a short greedy continuation of a
 * fixed prompt with the adapter being trained, so the user sees what the model now says, not only a loss. The
 * continuation is the generation loop's (engine/generate), as the chat would produce it at temperature 0.
 */
import { generate } from '../generate/generate';
import type { TextTokenizer } from '../io/prompt';
import type { CausalLM } from '../models/types';
import type { TokenizedExample } from './tokenize';

/** How many tokens of a text-only row (no prompt part) to use as the prompt. */
const TEXT_PROMPT_TOKENS = 8;
/** Tokens generated for the sample shown at each evaluation. */
export const SAMPLE_TOKENS = 24;

/**
 * The prompt part of a tokenized row: the ids before its first trained token (the chat template's user turn and
 * the assistant header, or a completion's prompt). A row that trains from its first token (plain text) gives
 * its first few tokens instead; an empty row gives null.
 */
export function samplePromptOf(row: TokenizedExample): number[] | null {
  const firstTrained = row.train.indexOf(1);
  const cut = firstTrained > 0 ? firstTrained : Math.min(TEXT_PROMPT_TOKENS, Math.floor(row.ids.length / 2));
  return cut > 0 ? row.ids.slice(0, cut) : null;
}

export interface SampleOptions {
  readonly maxNewTokens?: number;
  readonly tokenizer: TextTokenizer;
  readonly eosTokenIds?: readonly number[];
}

/** Greedy continuation of `promptIds` with the model as it is now (active adapters included), as text. */
export async function greedySample(model: CausalLM, promptIds: readonly number[], options: SampleOptions): Promise<string> {
  const result = await generate(model, promptIds, {
    maxNewTokens: options.maxNewTokens ?? SAMPLE_TOKENS, temperature: 0, tokenizer: options.tokenizer,
    ...(options.eosTokenIds ? { eosTokenIds: options.eosTokenIds } : {}),
  });
  return result.text ?? '';
}

/** The sampler a run passes to the loop: the first row with a prompt (validation rows first), or none. */
export function evaluationSampler(
  model: CausalLM,
  tokenizer: TextTokenizer,
  rows: readonly TokenizedExample[],
): (() => Promise<string>) | undefined {
  const prompt = rows.map(samplePromptOf).find((p) => p !== null);
  return prompt ? () => greedySample(model, prompt, { tokenizer }) : undefined;
}
