import type { Api, BaseModel, Events, HubDownload } from '../../../../preload/contract';
import { messageOf } from './errors';

/** Same rule as main's schema: owner/name (or a bare name) of letters, digits and _ . - */
const REPO_ID = /^(?:[A-Za-z0-9][A-Za-z0-9_.-]*\/)?[A-Za-z0-9][A-Za-z0-9_.-]*$/;

type Finished = Events['download.finished'];
type Progress = Events['download.progress'];

/**
 * One Hugging Face hub download at a time: start by repo id (and revision), follow `download.progress`, cancel,
 * and hand the registered model to `onModel` when `download.finished` says done. A cancelled or failed download
 * resumes when started again with the same repo and revision (main keeps the partial files).
 */
export class HubDownloadState {
  #api: Api;
  #onModel: (model: BaseModel) => void;
  #download = $state.raw<HubDownload | null>(null);
  #progress = $state.raw<Progress | null>(null);
  #starting = $state(false);
  #error = $state<string | null>(null);
  #outcome = $state<Finished['status'] | null>(null);
  /** Events that arrive before models.download answers (main starts the transfer first); not shown, so not reactive. */
  #early: ({ kind: 'progress'; event: Progress } | { kind: 'finished'; event: Finished })[] = [];

  constructor(api: Api, onModel: (model: BaseModel) => void) {
    this.#api = api;
    this.#onModel = onModel;
    api.on('download.progress', (p) => this.#onProgress(p));
    api.on('download.finished', (f) => this.#onFinished(f));
  }

  get download(): HubDownload | null { return this.#download; }
  get starting(): boolean { return this.#starting; }
  get error(): string | null { return this.#error; }
  /** How the last download ended: 'done', 'cancelled', 'failed'; null while one runs or before any. */
  get outcome(): Finished['status'] | null { return this.#outcome; }
  get receivedBytes(): number { return this.#progress?.receivedBytes ?? 0; }
  get totalBytes(): number { return this.#progress?.totalBytes || this.#download?.totalBytes || 0; }
  get file(): string | null { return this.#progress?.file ?? null; }
  get active(): boolean { return this.#download !== null; }

  async start(repoId: string, revision = ''): Promise<HubDownload | null> {
    const repo = repoId.trim();
    const rev = revision.trim();
    if (!REPO_ID.test(repo) || repo.includes('..')) {
      this.#error = 'Enter a hub repo id as owner/name, for example HuggingFaceTB/SmolLM2-135M-Instruct.';
      return null;
    }
    if (this.#download) {
      this.#error = `${this.#download.repoId} is still downloading; wait for it or cancel it first.`;
      return null;
    }
    this.#starting = true;
    this.#error = null;
    this.#outcome = null;
    this.#progress = null;
    try {
      const download = await this.#api.invoke('models.download', { repoId: repo, ...(rev ? { revision: rev } : {}) });
      this.#download = download;
      const early = this.#early.filter((e) => e.event.id === download.id);
      this.#early = [];
      for (const e of early) {
        if (e.kind === 'progress') this.#onProgress(e.event);
        else this.#onFinished(e.event);
      }
      return download;
    } catch (error) {
      this.#error = messageOf(error);
      return null;
    } finally {
      this.#starting = false;
    }
  }

  /** The repo id or revision changed since the error: it no longer describes what is typed. */
  dismissError(): void {
    this.#error = null;
  }

  async cancel(): Promise<void> {
    const download = this.#download;
    if (!download) return;
    try {
      await this.#api.invoke('models.cancelDownload', { id: download.id });
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  #onProgress(p: Progress): void {
    if (this.#download?.id === p.id) this.#progress = p;
    else if (this.#starting) this.#early.push({ kind: 'progress', event: p });
  }

  #onFinished(f: Finished): void {
    if (this.#download?.id !== f.id) {
      if (this.#starting) this.#early.push({ kind: 'finished', event: f });
      return;
    }
    this.#download = null;
    this.#outcome = f.status;
    if (f.status === 'failed') this.#error = f.error ?? 'the download failed';
    if (f.model) this.#onModel(f.model);
  }
}
