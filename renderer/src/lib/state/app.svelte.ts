import type { Api, AppInfo, Events, PathPurpose } from '../../../../preload/contract';
import { messageOf } from './errors';

export type Section = 'library' | 'train' | 'runs' | 'chat' | 'settings';

export type LibraryTab = 'models' | 'datasets' | 'adapters';

export const SECTIONS: readonly { id: Section; label: string }[] = [
  { id: 'library', label: 'Library' },
  { id: 'train', label: 'Fine-tune' },
  { id: 'runs', label: 'Training' },
  { id: 'chat', label: 'Chat' },
  { id: 'settings', label: 'Settings' },
];

const INFO_NOTICE_MS = 8000;

export interface Notice {
  readonly id: number;
  readonly kind: 'error' | 'info';
  readonly text: string;
}

/** Navigation, what the app reports about itself, the engine host's state, and notices for the user. */
export class AppState {
  #api: Api;
  #section = $state<Section>('library');
  #libraryTab = $state<LibraryTab>('models');
  #info = $state.raw<AppInfo | null>(null);
  #host = $state.raw<Events['host.status'] | null>(null);
  #notices = $state.raw<readonly Notice[]>([]);
  #nextNotice = 1;

  constructor(api: Api) {
    this.#api = api;
    api.on('host.status', (status) => (this.#host = status));
  }

  get section(): Section { return this.#section; }
  /** The Library's open tab: other views open it on the item they point at (a run's adapter). */
  get libraryTab(): LibraryTab { return this.#libraryTab; }
  get info(): AppInfo | null { return this.#info; }
  get host(): Events['host.status'] | null { return this.#host; }
  get notices(): readonly Notice[] { return this.#notices; }

  go(section: Section, libraryTab?: LibraryTab): void {
    this.#section = section;
    if (libraryTab) this.#libraryTab = libraryTab;
  }

  async load(): Promise<void> {
    try {
      this.#info = await this.#api.invoke('app.info', {});
    } catch (error) {
      this.notify('error', `Could not read app info: ${messageOf(error)}`);
    }
  }

  /** Native dialogs exist in the desktop app only; browser mode asks for a typed path. */
  get hasDialogs(): boolean {
    return this.#info?.mode === 'electron';
  }

  /** A path chosen in a native dialog (main grants it for the import or export that follows), or null. */
  async choosePath(purpose: PathPurpose): Promise<string | null> {
    try {
      const { path } = await this.#api.invoke('dialog.openPath', { purpose });
      return path;
    } catch (error) {
      this.notify('error', `Could not open the file dialog: ${messageOf(error)}`);
      return null;
    }
  }

  notify(kind: Notice['kind'], text: string): void {
    const notice = { id: this.#nextNotice++, kind, text };
    this.#notices = [...this.#notices.slice(-2), notice];
    // Information fades on its own; errors stay until dismissed.
    if (kind === 'info') setTimeout(() => this.dismiss(notice.id), INFO_NOTICE_MS);
  }

  dismiss(id: number): void {
    this.#notices = this.#notices.filter((n) => n.id !== id);
  }
}
