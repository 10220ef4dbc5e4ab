/**
 * models.download / models.cancelDownload: a Hugging Face hub model fetched into a staging folder inside the
 * data directory (downloads/<owner>--<name>@<commit>, kept across cancels so the next attempt resumes), then
 * moved into the library as a model with source kind 'hub' and the commit as its revision.
 */
import { randomUUID } from 'node:crypto';
import { readModelConfig } from '../../engine/models/registry';
import type { HandlerContext } from '../context';
import { IpcError, toAppError } from '../errors';
import { downloadHubModel, HUB_URL, listHubModel, removeStaging, type DownloadProgress, type HubListing } from '../hub-download';
import type { Handlers } from '../types';
import { countParameters } from './library';

/** At most this often per download, besides each file's end. */
const PROGRESS_EVERY_MS = 100;

export function downloadHandlers(ctx: HandlerContext): Pick<Handlers, 'models.download' | 'models.cancelDownload'> {
  const { library } = ctx;
  // HF_ENDPOINT is the hub clients' own variable for a mirror (or, in end-to-end tests, a fake hub).
  const hubUrl = (ctx.hubUrl ?? process.env.HF_ENDPOINT ?? HUB_URL).replace(/\/+$/, '');
  const active = new Map<string, { readonly staging: string; readonly controller: AbortController }>();

  function register(listing: HubListing, staging: string) {
    const config = readModelConfig(staging); // refuses an unsupported model_type, naming it
    return library.models.import({
      sourcePath: staging, mode: 'move', name: listing.repoId, architecture: config.modelType,
      parameterCount: countParameters(staging), source: { kind: 'hub', ref: listing.repoId, revision: listing.commit },
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
      await downloadHubModel(hubUrl, listing, staging, controller.signal, (p) => progress.report(p));
      progress.stop();
      const model = register(listing, staging);
      removeStaging(staging); // empty after the move; gone either way
      ctx.emit('download.finished', { id, repoId: listing.repoId, status: 'done', model, error: null });
    } catch (error) {
      progress.stop();
      const e = toAppError(error);
      const status = e.code === 'CANCELLED' ? 'cancelled' : 'failed';
      ctx.emit('download.finished', { id, repoId: listing.repoId, status, model: null, error: status === 'failed' ? `[${e.code}] ${e.message}` : null });
    } finally {
      active.delete(id);
    }
  }

  return {
    'models.download': async ({ repoId, revision }) => {
      const listing = await listHubModel(hubUrl, repoId, revision ?? 'main');
      const staging = library.dataDir.resolve(`downloads/${repoId.replace('/', '--')}@${listing.commit}`);
      const running = [...active.entries()].find(([, d]) => d.staging === staging);
      if (running) throw new IpcError('BUSY', `'${repoId}' at ${listing.commit} is already downloading (download ${running[0]}); wait for it or cancel it`);
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
    'models.cancelDownload': async ({ id }) => {
      const download = active.get(id);
      if (!download) return { cancelled: false };
      download.controller.abort();
      return { cancelled: true };
    },
  };
}
