/**
 * Chat on one resident base: load it, then each reply names its own mix of adapter versions (the host loads any
 * it does not hold yet, under the version id as name, and activates the mix for that reply alone); tokens stream
 * as `chat.token` events; a reply stops on request. A comparison the user saves is kept in the library.
 */
import type { HandlerContext } from '../context';
import { IpcError } from '../errors';
import type { Handlers } from '../types';

export function chatHandlers(ctx: HandlerContext): Pick<Handlers,
  'chat.load' | 'chat.generate' | 'chat.stop' | 'comparisons.save' | 'comparisons.list' | 'comparisons.delete' | 'adapters.exportMerged'> {
  const { library, host } = ctx;
  const generating = new Map<string, number>();
  let chatModelId: string | null = null;

  return {
    'chat.load': async ({ modelId }) => {
      // Whatever was loaded is gone once another load starts: a failed load leaves no model, never the previous one.
      chatModelId = null;
      const loaded = await host.call({ type: 'loadBase', modelDir: library.models.resolvePath(modelId) });
      chatModelId = modelId;
      return { modelId, chatTemplate: loaded.chatTemplate };
    },
    'chat.generate': async ({ requestId, mix, messages, sampling }) => {
      if (generating.has(requestId)) throw new IpcError('BUSY', `request '${requestId}' is already generating; use a new requestId`);
      if (chatModelId === null) throw new IpcError('INVALID_INPUT', 'no model is loaded for chat: load one first (chat.load)');
      const modelDir = library.models.resolvePath(chatModelId);
      const adapters = mix.adapters.map(({ versionId, scale }) => {
        const version = library.versions.get(versionId);
        if (library.adapters.get(version.adapterId).baseModelId !== chatModelId) {
          throw new IpcError('INVALID_INPUT', `adapter version ${versionId} was trained on another base model than the one loaded for chat`);
        }
        return { name: versionId, dir: library.versions.resolvePath(versionId), scale };
      });
      // One request carries the base and the mix: the host activates it inside the request, so concurrent replies
      // with different mixes cannot interleave a set-then-use.
      const handle = host.request({ type: 'generate', modelDir, adapters, messages, sampling }, (event) => {
        if (event.kind === 'token') ctx.emit('chat.token', { requestId, text: event.text, tokenId: event.tokenId });
      });
      generating.set(requestId, handle.seq);
      try {
        const result = await handle.result;
        return { text: result.text, tokens: result.tokens, tokensPerSecond: result.tokensPerSecond };
      } finally {
        generating.delete(requestId);
      }
    },
    'chat.stop': async ({ requestId }) => {
      const seq = generating.get(requestId);
      if (seq === undefined) return { stopped: false };
      void host.cancel(seq);
      return { stopped: true };
    },
    'comparisons.save': async (comparison) => {
      if (comparison.baseModelId !== null) library.models.get(comparison.baseModelId); // NOT_FOUND names an unknown model
      return library.comparisons.save(comparison);
    },
    'comparisons.list': async () => library.comparisons.list().reverse(),
    'comparisons.delete': async ({ id }) => {
      library.comparisons.delete(id);
      return { deleted: true };
    },
    'adapters.exportMerged': async ({ versionId, destination }) => {
      const outputDir = ctx.paths.check(destination, 'export-folder');
      const version = library.versions.get(versionId);
      const adapter = library.adapters.get(version.adapterId);
      const modelDir = library.models.resolvePath(adapter.baseModelId);
      return host.call({ type: 'exportMerged', modelDir, adapters: [{ dir: library.versions.resolvePath(versionId), scale: 1 }], outputDir });
    },
  };
}
