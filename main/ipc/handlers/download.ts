/** models.download / models.cancelDownload: hub downloads (services/model-downloads.ts) behind the contract. */
import { HUB_URL } from '../../services/hub-download';
import { modelDownloads } from '../../services/model-downloads';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';

export function downloadHandlers(ctx: HandlerContext): Pick<Handlers, 'models.download' | 'models.cancelDownload'> {
  // HF_ENDPOINT is the hub clients' own variable for a mirror (or, in end-to-end tests, a fake hub).
  const hubUrl = (ctx.hubUrl ?? process.env.HF_ENDPOINT ?? HUB_URL).replace(/\/+$/, '');
  const downloads = modelDownloads({ library: ctx.library, files: ctx.files, hubUrl, emit: (name, payload) => ctx.emit(name, payload) });
  return {
    'models.download': async ({ repoId, revision }) => downloads.start(repoId, revision ?? 'main'),
    'models.cancelDownload': async ({ id }) => ({ cancelled: downloads.cancel(id) }),
  };
}
