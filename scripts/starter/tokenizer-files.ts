/** The starter model's tokenizer files: tokenizer.json, tokenizer_config.json (with the chat template). */
import { countPieces, toTokenizerJson, trainBpe } from './bpe-trainer';

export const END_OF_TEXT = '<|endoftext|>';
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END] as const;

/** ChatML: each message is `<|im_start|>role\ncontent<|im_end|>\n`; generation continues after `assistant\n`. */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export function tokenizerConfigJson(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: END_OF_TEXT,
    eos_token: END_OF_TEXT,
    pad_token: END_OF_TEXT,
    unk_token: null,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    chat_template: CHAT_TEMPLATE,
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((content, id) => [String(id), {
      content, lstrip: false, rstrip: false, normalized: false, single_word: false, special: true,
    }])),
  };
}

/** Trains the byte-level BPE over the documents and returns tokenizer.json as an object. */
export function trainStarterTokenizer(documents: readonly string[], vocabSize: number): Record<string, unknown> {
  const model = trainBpe(countPieces(documents), { vocabSize, specialTokens: SPECIAL_TOKENS });
  return toTokenizerJson(model);
}
