import type { Api, Settings } from '../../../../preload/contract';
import { messageOf } from './errors';

/** Persisted preferences: backend, theme, default hyper-parameters. */
export class SettingsState {
  #api: Api;
  #settings = $state.raw<Settings>({ backend: 'auto', theme: 'system', defaults: {} });
  #systemDark = $state(false);
  #error = $state<string | null>(null);
  #saving = $state(false);

  constructor(api: Api) {
    this.#api = api;
  }

  get settings(): Settings { return this.#settings; }
  get error(): string | null { return this.#error; }
  get saving(): boolean { return this.#saving; }

  /** The theme to put on <html data-theme>: 'system' follows the OS preference the shell reports. */
  readonly resolvedTheme = $derived<'light' | 'dark'>(
    this.#settings.theme === 'system' ? (this.#systemDark ? 'dark' : 'light') : this.#settings.theme,
  );

  setSystemDark(dark: boolean): void {
    this.#systemDark = dark;
  }

  async load(): Promise<void> {
    try {
      this.#settings = await this.#api.invoke('settings.get', {});
      this.#error = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  async update(patch: Partial<Settings>): Promise<void> {
    const previous = this.#settings;
    this.#settings = { ...previous, ...patch };
    this.#saving = true;
    try {
      this.#settings = await this.#api.invoke('settings.set', patch);
      this.#error = null;
    } catch (error) {
      this.#settings = previous;
      this.#error = messageOf(error);
    } finally {
      this.#saving = false;
    }
  }
}
