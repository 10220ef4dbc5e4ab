/**
 * Hub downloads as the app runs them: a Hugging Face hub model fetched into a staging folder inside the data
 * directory (downloads/<owner>--<name>@<commit>, kept across cancels so the next attempt resumes; hub-download.ts;
 * the library's start-up check removes what a stopped process left), then read by the file worker and moved into the library as a model with source kind 'hub' and the commit as its
 * revision. Progress and the outcome go out as events.
 */
import { randomUUID } from 'node:crypto';
import type { EventName, Events } from '../../preload/contract';
import { layout, type Library } from '../store/index';
import { ServiceError } from './errors';
import type { FileWork } from './file-work/client';
import { downloadHubModel, listHubModel, removeStaging, type DownloadProgress, type HubListing } from './hub-download';

/** At most this often per download, besides each file's end. */
const PROGRESS_EVERY_MS = 100;

export interface ModelDownloadsContext {
  readonly library: Library;
  readonly files: FileWork;
  readonly hubUrl: string;
  emit<E extends EventName>(name: E, payload: Events[E]): void;
}

export interface DownloadStarted {
  readonly id: string;
  readonly repoId: string;
  readonly revision: string;
  readonly files: readonly string[];
  readonly totalBytes: number;
}

export function modelDownloads(ctx: ModelDownloadsContext): { start(repoId: string, revision: string): Promise<DownloadStarted>; cancel(id: string): boolean } {
  const { library } = ctx;
  const active = new Map<string, { readonly staging: string; readonly controller: AbortController }>();

  async function register(listing: HubListing, staging: string) {
    const summary = await ctx.files.run({ kind: 'inspectModel', dir: staging }); // refuses an unsupported model_type, naming it
    return library.models.import({
      sourcePath: staging, mode: 'move', name: listing.repoId, architecture: summary.modelType, parameterCount: summary.parameterCount,
      contentHash: summary.contentHash, source: { kind: 'hub', ref: listing.repoId, revision: listing.commit },
    });
  }

  /** Progress at most every PROGRESS_EVERY_MS, the latest one always sent in the end (a trailing timer). */
  function throttled(id: string) {
    let last = 0;
    let latest: DownloadProgress | null = null;
    let timer: NodeJS.Timeout | undefined;
    const send = () => {
      timer = undefined;
      last = Date.now();
      if (latest) ctx.emit('download.progress', { id, receivedBytes: latest.receivedBytes, totalBytes: latest.totalBytes, file: latest.file });
      latest = null;
    };
    return {
      report(p: DownloadProgress) {
        latest = p;
        const wait = PROGRESS_EVERY_MS - (Date.now() - last);
        if (wait <= 0 || p.receivedBytes >= p.totalBytes) {
          clearTimeout(timer);
          send();
        } else {
          timer ??= setTimeout(send, wait);
        }
      },
      stop: () => clearTimeout(timer),
    };
  }

  async function run(id: string, listing: HubListing, staging: string, controller: AbortController): Promise<void> {
    const progress = throttled(id);
    try {
      await downloadHubModel(ctx.hubUrl, listing, staging, controller.signal, (p) => progress.report(p));
      progress.stop();
      const model = await register(listing, staging);
      removeStaging(staging); // empty after the move; gone either way
      ctx.emit('download.finished', { id, repoId: listing.repoId, status: 'done', model, error: null });
    } catch (error) {
      progress.stop();
      const e = error as { code?: unknown; message?: unknown };
      const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
      const status = code === 'CANCELLED' ? 'cancelled' : 'failed';
      ctx.emit('download.finished', { id, repoId: listing.repoId, status, model: null, error: status === 'failed' ? `[${code}] ${String(e.message)}` : null });
    } finally {
      active.delete(id);
    }
  }

  return {
    async start(repoId, revision) {
      const listing = await listHubModel(ctx.hubUrl, repoId, revision);
      const staging = library.dataDir.resolve(layout.downloadDir(`${repoId.replace('/', '--')}@${listing.commit}`));
      const running = [...active.entries()].find(([, d]) => d.staging === staging);
      if (running) throw new ServiceError('BUSY', `'${repoId}' at ${listing.commit} is already downloading (download ${running[0]}); wait for it or cancel it`);
      const id = `dl-${randomUUID()}`;
      const controller = new AbortController();
      active.set(id, { staging, controller });
      void run(id, listing, staging, controller);
      const sizes = listing.files.map((f) => f.size);
      return {
        id, repoId, revision: listing.commit, files: listing.files.map((f) => f.name),
        totalBytes: sizes.every((s) => s !== null) ? sizes.reduce<number>((a, b) => a + (b ?? 0), 0) : 0,
      };
    },
    cancel(id) {
      const download = active.get(id);
      if (!download) return false;
      download.controller.abort();
      return true;
    },
  };
}
