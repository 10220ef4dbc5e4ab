/**
 * Prompt encoding: the one place that decides which token ids a model sees for a text or a chat. Chat messages
 * are rendered with the model's chat template (a plain role-tagged layout when it has none); text is encoded
 * without the tokenizer's own special tokens; then BOS goes first exactly when the tokenizer asks for it
 * (tokenizer_config.json's add_bos_token, else what tokenizer.json's post-processor adds), and only once: a
 * template that writes BOS itself does not get a second. Training, the chat and `lorasmith generate` all encode
 * here, so a model is trained and prompted alike.
 */

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/** What training, generation and decoding need of a tokenizer (io/tokenizer's ModelTokenizer is one). */
export interface TextTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The model's chat template source, or null: then chats use fallbackChatTemplate. */
  readonly chatTemplate: string | null;
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  readonly bosTokenId: number | null;
  /** Whether sequences start with BOS, as the tokenizer's own config says (see ModelTokenizer.addBosToken). */
  readonly addBosToken: boolean;
  /** The tokenizer's end-of-sequence ids (a model's generation config may add more). */
  readonly eosTokenIds: readonly number[];
}

/** A plain role-tagged layout for models without a chat template. */
export function fallbackChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  const body = messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join('');
  return addGenerationPrompt ? `${body}<|assistant|>\n` : body;
}

/** Messages as text: the model's chat template, or the fallback layout for a model without one. */
export function renderChat(tokenizer: TextTokenizer, messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  return tokenizer.chatTemplate === null
    ? fallbackChatTemplate(messages, addGenerationPrompt)
    : tokenizer.applyChatTemplate(messages, { addGenerationPrompt });
}

/** The BOS id to put in front of `ids` (encoded without special tokens), or null when none belongs there. */
export function bosToAdd(tokenizer: TextTokenizer, ids: readonly number[]): number | null {
  const bos = tokenizer.bosTokenId;
  return tokenizer.addBosToken && bos !== null && ids[0] !== bos ? bos : null;
}

/** Token ids of a text, or of a chat rendered for the assistant's next turn, with the tokenizer's BOS policy. */
export function encodePrompt(tokenizer: TextTokenizer, prompt: string | readonly ChatMessage[]): number[] {
  const text = typeof prompt === 'string' ? prompt : renderChat(tokenizer, prompt, true);
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const bos = bosToAdd(tokenizer, ids);
  return bos === null ? ids : [bos, ...ids];
}
