import type { Api, SavedComparison } from '../../../../preload/contract';
import type { ComparisonContent } from '../comparison';
import { messageOf } from './errors';

/** Chat comparisons kept in the library: save one (and say so), list them newest first, reopen one, delete. */
export class ComparisonsState {
  #api: Api;
  #saved = $state.raw<readonly SavedComparison[]>([]);
  #openId = $state<string | null>(null);
  #saving = $state(false);
  /** What the last save did, in words; cleared when the conversation it saved changes. */
  #notice = $state<string | null>(null);
  #error = $state<string | null>(null);

  constructor(api: Api) {
    this.#api = api;
  }

  get saved(): readonly SavedComparison[] { return this.#saved; }
  get saving(): boolean { return this.#saving; }
  get notice(): string | null { return this.#notice; }
  get error(): string | null { return this.#error; }
  readonly opened = $derived(this.#saved.find((c) => c.id === this.#openId) ?? null);

  async refresh(): Promise<void> {
    try {
      this.#saved = await this.#api.invoke('comparisons.list', {});
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  async save(comparison: ComparisonContent): Promise<SavedComparison | null> {
    this.#saving = true;
    this.#notice = null;
    this.#error = null;
    try {
      const saved = await this.#api.invoke('comparisons.save', comparison);
      this.#saved = [saved, ...this.#saved.filter((c) => c.id !== saved.id)];
      const answers = saved.outputs.length;
      this.#notice = `Saved ${saved.title} (${answers} answer${answers === 1 ? '' : 's'}): reopen it under Saved comparisons.`;
      return saved;
    } catch (error) {
      this.#error = `Could not save the comparison: ${messageOf(error)}`;
      return null;
    } finally {
      this.#saving = false;
    }
  }

  /** The conversation moved on since the last save: "Saved" no longer describes it. */
  forgetNotice(): void {
    this.#notice = null;
    this.#error = null;
  }

  open(id: string | null): void {
    this.#openId = id;
  }

  async remove(id: string): Promise<void> {
    try {
      await this.#api.invoke('comparisons.delete', { id });
      this.#saved = this.#saved.filter((c) => c.id !== id);
      if (this.#openId === id) this.#openId = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }
}
