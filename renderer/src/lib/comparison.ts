/**
 * A chat comparison as the library keeps it (SavedComparison: the messages, every answer with its turn and label),
 * seen as prompts with their answers, and written as Markdown. Pure functions, no DOM.
 */
import type { SavedComparison } from '../../../preload/contract';

export type ComparisonContent = Omit<SavedComparison, 'id' | 'createdAt'>;

export interface ComparisonTurn {
  readonly prompt: string;
  readonly answers: readonly SavedComparison['outputs'][number][];
}

/** The system prompt, if the conversation had one. */
export function systemPromptOf(comparison: ComparisonContent): string | null {
  return comparison.messages.find((m) => m.role === 'system')?.content ?? null;
}

/** Each user prompt with the answers given to it, in the order the set-ups answered. */
export function turnsOf(comparison: ComparisonContent): ComparisonTurn[] {
  const prompts = comparison.messages.filter((m) => m.role === 'user');
  return prompts.map((prompt, turn) => ({
    prompt: prompt.content,
    answers: comparison.outputs.filter((o) => o.turn === turn),
  }));
}

/** A title to find it by: the first prompt (shortened) and the set-ups that answered it. */
export function comparisonTitle(comparison: Pick<ComparisonContent, 'messages' | 'outputs'>): string {
  const first = comparison.messages.find((m) => m.role === 'user')?.content.replace(/\s+/g, ' ').trim() ?? '';
  const prompt = first.length > 48 ? `${first.slice(0, 47)}…` : first;
  const labels = [...new Set(comparison.outputs.filter((o) => o.turn === 0).map((o) => o.label))];
  return `“${prompt}”: ${labels.join(' vs ')}`;
}

/** The comparison as Markdown: base model, sampling, then each prompt with every answer under its label. */
export function comparisonMarkdown(comparison: ComparisonContent, modelName: string): string {
  const lines = [`# ${comparison.title}`, '', `Base model: ${modelName}`, ''];
  const s = comparison.sampling;
  lines.push(`Sampling: temperature ${s.temperature}, top-k ${s.topK}, top-p ${s.topP}, repetition penalty ${s.repetitionPenalty}, max ${s.maxNewTokens} tokens, seed ${s.seed}`, '');
  const system = systemPromptOf(comparison);
  if (system) lines.push(`System: ${system}`, '');
  turnsOf(comparison).forEach((turn, i) => {
    lines.push(`## Prompt ${i + 1}`, '', turn.prompt, '');
    for (const answer of turn.answers) lines.push(`### ${answer.label}`, '', answer.text, '');
  });
  return lines.join('\n');
}
