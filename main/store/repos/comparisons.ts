/** Chat comparisons the user saved: one conversation, the outputs of several adapter mixes side by side. */
import type { AdapterMix, ChatMessage, SamplingSettings } from '../../../preload/contract/domain';
import { StoreError, notFound } from '../errors';
import { newId, nowIso } from '../ids';
import { parseJson, stableJson } from '../json';
import type { ComparisonOutputRow, ComparisonRow, SavedComparison } from '../types';
import type { StoreContext } from './context';

/** What to save: each output names the user message it answers (`turn`, default 0: a one-prompt comparison). */
export type ComparisonSave = Omit<SavedComparison, 'id' | 'createdAt' | 'outputs'> & {
  readonly outputs: readonly (Omit<SavedComparison['outputs'][number], 'turn'> & { readonly turn?: number })[];
};

export class ComparisonsRepo {
  constructor(private readonly ctx: StoreContext) {}

  save(input: ComparisonSave): SavedComparison {
    if (input.title.trim() === '') throw new StoreError('INVALID_INPUT', 'a comparison title must not be empty');
    if (input.outputs.length === 0) throw new StoreError('INVALID_INPUT', 'a comparison needs at least one output');
    const prompts = input.messages.filter((m) => m.role === 'user').length;
    for (const o of input.outputs) {
      const turn = o.turn ?? 0;
      if (!Number.isInteger(turn) || turn < 0 || turn >= Math.max(1, prompts)) {
        throw new StoreError('INVALID_INPUT', `an output answers prompt ${turn}, but the conversation has ${prompts} user message(s)`);
      }
    }
    const row: ComparisonRow = {
      id: newId('cmp'),
      title: input.title.trim(),
      base_model_id: input.baseModelId,
      messages_json: stableJson(input.messages),
      sampling_json: stableJson(input.sampling),
      created_at: nowIso(),
    };
    const insertOutput = this.ctx.db.prepare(`INSERT INTO comparison_outputs (comparison_id, position, turn, label, mix_json,
      text, tokens, tokens_per_second) VALUES (@comparison_id, @position, @turn, @label, @mix_json, @text, @tokens, @tokens_per_second)`);
    this.ctx.db.transaction(() => {
      this.ctx.db.prepare(`INSERT INTO comparisons VALUES (@id, @title, @base_model_id, @messages_json,
        @sampling_json, @created_at)`).run(row);
      input.outputs.forEach((o, position) => insertOutput.run({
        comparison_id: row.id, position, turn: o.turn ?? 0, label: o.label, mix_json: stableJson(o.mix), text: o.text,
        tokens: o.tokens, tokens_per_second: o.tokensPerSecond,
      } satisfies ComparisonOutputRow));
    })();
    return this.get(row.id);
  }

  list(): SavedComparison[] {
    const ids = this.ctx.db.prepare('SELECT id FROM comparisons ORDER BY created_at, id').all() as { id: string }[];
    return ids.map((r) => this.get(r.id));
  }

  get(id: string): SavedComparison {
    const row = this.ctx.db.prepare('SELECT * FROM comparisons WHERE id = ?').get(id) as ComparisonRow | undefined;
    if (!row) throw notFound('comparison', id);
    const outputs = this.ctx.db.prepare('SELECT * FROM comparison_outputs WHERE comparison_id = ? ORDER BY position')
      .all(id) as ComparisonOutputRow[];
    return {
      id: row.id,
      title: row.title,
      baseModelId: row.base_model_id,
      messages: parseJson<ChatMessage[]>(row.messages_json),
      sampling: parseJson<SamplingSettings>(row.sampling_json),
      outputs: outputs.map((o) => ({
        turn: o.turn, label: o.label, mix: parseJson<AdapterMix>(o.mix_json), text: o.text, tokens: o.tokens,
        tokensPerSecond: o.tokens_per_second,
      })),
      createdAt: row.created_at,
    };
  }

  delete(id: string): void {
    if (this.ctx.db.prepare('DELETE FROM comparisons WHERE id = ?').run(id).changes === 0) throw notFound('comparison', id);
  }
}
