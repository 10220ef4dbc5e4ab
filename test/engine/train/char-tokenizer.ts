/** A character tokenizer with a ChatML template, for tests that must not depend on a real vocabulary. */
import type { ChatMessage } from '../../../main/engine/train/datasets/formats';
import type { TrainingTokenizer } from '../../../main/engine/train/tokenize';

export const CHARS = '\u0000\u0001abcdefghijklmnopqrstuvwxyz0123456789 .,:?!<>|\n#-_';

export function charTokenizer(): TrainingTokenizer & { decode(ids: readonly number[]): string } {
  return {
    bosTokenId: null,
    eosTokenId: 1,
    encode(text: string): number[] {
      return [...text.toLowerCase()].map((c) => {
        const i = CHARS.indexOf(c);
        if (i < 0) throw new Error(`char '${c}' not in test vocabulary`);
        return i;
      });
    },
    decode: (ids) => ids.map((i) => CHARS[i] ?? '?').join(''),
    applyChatTemplate(messages: readonly ChatMessage[], options = {}): string {
      const body = messages.map((m) => `<|${m.role}|>${m.content}<|end|>\n`).join('');
      return options.addGenerationPrompt ? `${body}<|assistant|>` : body;
    },
  };
}
