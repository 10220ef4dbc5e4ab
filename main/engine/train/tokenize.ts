/**
 * Examples to token ids with a per-token train mask. By default only completion / assistant tokens are targets
 * (prompt and chat-template tokens masked); `trainOnPrompt` makes every token a target. Sequences are truncated to
 * maxSeqLen and every truncation is reported; an example left with no target is skipped and reported. Texts are
 * encoded as io/prompt encodes prompts (no special tokens of the tokenizer's own, BOS by its config's policy).
 */
import { TrainError } from './errors';
import { bosToAdd, renderChat, type TextTokenizer } from '../io/prompt';
import type { ChatMessage, Example } from './datasets/formats';
import type { DatasetIssue } from './datasets/read';

export interface TokenizeOptions {
  readonly maxSeqLen: number;
  readonly trainOnPrompt?: boolean;
  /** Append EOS after a completion so the model learns to stop (default true). */
  readonly addEos?: boolean;
}

export interface TokenizedExample {
  readonly line: number;
  readonly ids: readonly number[];
  /** 1 where the token is a loss target, per token of ids. */
  readonly train: readonly number[];
}

export interface TokenizeReport {
  readonly examples: number;
  readonly tokens: number;
  readonly targetTokens: number;
  readonly truncated: number;
  readonly truncatedTokens: number;
  readonly skipped: readonly DatasetIssue[];
}

/** A chat rendered for training; a conversation that opens with the assistant has no prompt before it. */
function render(tokenizer: TextTokenizer, messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  try {
    return renderChat(tokenizer, messages, addGenerationPrompt);
  } catch (error) {
    if (messages.length === 0) return '';
    throw error;
  }
}

/**
 * Chat to segments: for each assistant turn, the text the template adds for it beyond the prompt (rendered with
 * the generation prompt) is the trained part; everything else is context.
 */
export function chatSegments(tokenizer: TextTokenizer, messages: readonly ChatMessage[]): { text: string; train: boolean }[] {
  const segments: { text: string; train: boolean }[] = [];
  let done = '';
  messages.forEach((message, i) => {
    if (message.role !== 'assistant') return;
    const prompt = render(tokenizer, messages.slice(0, i), true);
    const full = render(tokenizer, messages.slice(0, i + 1), false);
    if (!prompt.startsWith(done) || !full.startsWith(prompt)) {
      throw new TrainError('INVALID_DATASET', 'the chat template does not render conversations as growing prefixes; cannot mask prompt tokens');
    }
    segments.push({ text: prompt.slice(done.length), train: false }, { text: full.slice(prompt.length), train: true });
    done = full;
  });
  const rest = render(tokenizer, messages, false);
  if (rest.length > done.length && rest.startsWith(done)) segments.push({ text: rest.slice(done.length), train: false });
  return segments.filter((s) => s.text !== '');
}

/**
 * Segments to the ids of their whole text, encoded once (as chat and generation encode a rendered prompt), each token
 * marked with the segment it starts in. Encoding segment by segment gives other ids wherever a tokenizer treats the
 * start of a text specially: SentencePiece-style ones (Llama 2, Mistral, TinyLlama) prepend '▁' to every text, so a
 * completion " 1." alone encodes as "▁▁" "1" "." but after its prompt as "▁" "1" ".", and a model trained on the
 * former answers with a double space. Segment k ends where the encoding of segments 0..k stops agreeing with the
 * whole text's; a token merged across a boundary goes to the later segment.
 */
export function encodeSegments(tokenizer: TextTokenizer, segments: readonly { readonly text: string }[]): { ids: number[]; segmentOf: number[] } {
  const ids = tokenizer.encode(segments.map((s) => s.text).join(''), { addSpecialTokens: false });
  // Most tokenizers (byte-level BPE: GPT-2, Llama 3, Qwen) encode the pieces as the whole where segments meet at
  // pre-token boundaries: then the pieces' lengths are the boundaries, at one more encode instead of one per segment.
  const pieces = segments.map((s) => tokenizer.encode(s.text, { addSpecialTokens: false }));
  if (pieces.reduce((n, p) => n + p.length, 0) === ids.length && pieces.flat().every((id, i) => id === ids[i])) {
    return { ids, segmentOf: pieces.flatMap((p, k) => p.map(() => k)) };
  }
  const segmentOf = new Array<number>(ids.length).fill(Math.max(0, segments.length - 1));
  let text = '';
  let start = 0;
  for (let k = 0; k < segments.length - 1; k++) {
    text += segments[k]?.text ?? '';
    const prefix = tokenizer.encode(text, { addSpecialTokens: false });
    let end = 0;
    while (end < prefix.length && end < ids.length && prefix[end] === ids[end]) end++;
    for (let i = start; i < end; i++) segmentOf[i] = k;
    start = Math.max(start, end);
  }
  return { ids, segmentOf };
}

export function tokenizeExamples(
  examples: readonly Example[],
  tokenizer: TextTokenizer,
  options: TokenizeOptions,
): { examples: TokenizedExample[]; report: TokenizeReport } {
  if (!Number.isInteger(options.maxSeqLen) || options.maxSeqLen < 2) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `maxSeqLen must be an integer of at least 2, got ${String(options.maxSeqLen)}`);
  }
  const out: TokenizedExample[] = [];
  const skipped: DatasetIssue[] = [];
  let truncated = 0;
  let truncatedTokens = 0;
  let tokens = 0;
  let targetTokens = 0;
  for (const example of examples) {
    const segments = example.kind === 'chat' ? chatSegments(tokenizer, example.messages) : example.segments;
    const { ids, segmentOf } = encodeSegments(tokenizer, segments);
    const train = segmentOf.map((k): number => (segments[k]?.train || options.trainOnPrompt ? 1 : 0));
    // The prompt encoding's BOS policy (a template that writes BOS itself gets no second one).
    const bos = bosToAdd(tokenizer, ids);
    if (bos !== null) {
      ids.unshift(bos);
      train.unshift(0);
    }
    const eos = tokenizer.eosTokenIds[0];
    if (example.kind === 'segments' && (options.addEos ?? true) && eos !== undefined) {
      ids.push(eos);
      train.push(1);
    }
    if (ids.length > options.maxSeqLen) {
      truncated++;
      truncatedTokens += ids.length - options.maxSeqLen;
      ids.length = options.maxSeqLen;
      train.length = options.maxSeqLen;
    }
    // Token 0 is never a target (nothing precedes it): a target needs a position > 0.
    const targets = train.slice(1).reduce((s, v) => s + v, 0);
    if (targets === 0) {
      skipped.push({
        line: example.line,
        message: ids.length === options.maxSeqLen ? `no completion tokens within maxSeqLen ${options.maxSeqLen}` : 'no tokens to train on',
      });
      continue;
    }
    out.push({ line: example.line, ids, train });
    tokens += ids.length;
    targetTokens += targets;
  }
  return { examples: out, report: { examples: out.length, tokens, targetTokens, truncated, truncatedTokens, skipped } };
}
