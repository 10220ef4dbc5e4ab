/** A character tokenizer with a ChatML-like template, for tests that must not depend on a real vocabulary. */
import type { ChatMessage, TextTokenizer } from '../../../main/engine/io/prompt';

export const CHARS = '\u0000\u0001abcdefghijklmnopqrstuvwxyz0123456789 .,:?!<>|\n#-_';

export function charTokenizer(): TextTokenizer {
  return {
    bosTokenId: null,
    addBosToken: false,
    eosTokenIds: [1],
    chatTemplate: "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    encode(text: string): number[] {
      return [...text.toLowerCase()].map((c) => {
        const i = CHARS.indexOf(c);
        if (i < 0) throw new Error(`char '${c}' not in test vocabulary`);
        return i;
      });
    },
    decode: (ids, options = {}) => ids.filter((i) => !(options.skipSpecialTokens && i <= 1)).map((i) => CHARS[i] ?? '?').join(''),
    applyChatTemplate(messages: readonly ChatMessage[], options = {}): string {
      const body = messages.map((m) => `<|${m.role}|>${m.content}<|end|>\n`).join('');
      return options.addGenerationPrompt ? `${body}<|assistant|>` : body;
    },
  };
}
