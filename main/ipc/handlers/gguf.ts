/**
 * GGUF in and out: the models Ollama, LM Studio or a chosen folder already hold, added to the library where they
 * lie; adapter versions exported for Ollama and llama.cpp. The engine host reads the files; these handlers only
 * check what they are given and record the results.
 */
import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import type { FoundGgufModel } from '../../../preload/contract';
import type { WireFoundGguf } from '../../host/protocol';
import { defaultGgufFolders } from '../../services/gguf-folders';
import type { HandlerContext } from '../context';
import { IpcError } from '../errors';
import type { Handlers } from '../types';

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export function ggufHandlers(ctx: HandlerContext): Pick<Handlers, 'models.findGguf' | 'models.importGguf' | 'adapters.exportGguf'> {
  const { library, host } = ctx;
  /** What the last search found, by path: only these can be added (a path from anywhere else is refused). */
  let found = new Map<string, WireFoundGguf>();

  return {
    'models.findGguf': async ({ folder }) => {
      const folders = ctx.ggufFolders ?? defaultGgufFolders(process.env, homedir(), process.platform);
      const chosen = folder === undefined ? [] : [ctx.paths.check(folder, 'model-folder')];
      const results = await host.call({ type: 'findGguf', ollamaDirs: folders.ollama, lmstudioDirs: folders.lmstudio, folders: chosen });
      found = new Map(results.map((f) => [f.path, f]));
      const inLibrary = new Map(library.models.list().map((m) => [m.path, m.id]));
      const models: FoundGgufModel[] = results.map((f) => ({
        origin: f.origin, name: f.name, path: f.path, bytes: f.bytes, architecture: f.architecture, quantization: f.quantization,
        parameterCount: f.parameterCount, contextLength: f.contextLength, hasChatTemplate: f.hasChatTemplate, problem: f.problem,
        note: f.note, modelId: inLibrary.get(realPath(f.path)) ?? null,
      }));
      return { found: models, searched: [...folders.ollama, ...folders.lmstudio, ...chosen] };
    },
    'models.importGguf': async ({ path, name }) => {
      const f = found.get(path);
      if (!f) throw new IpcError('PATH_NOT_GRANTED', `'${path}' is not among the GGUF models the last search found; search again and add one of them`);
      if (f.problem !== null || f.architecture === null) throw new IpcError('INVALID_INPUT', `${f.name} cannot be a base model here: ${f.problem ?? 'its header could not be read'}`);
      // Ollama names its blob by its sha256; any other file of gigabytes is hashed in the file worker, not here.
      const contentHash = f.digest ?? (await ctx.files.run({ kind: 'hashFile', path: f.path })).contentHash;
      return library.models.importGguf({
        path: f.path, ...(name ? { name } : {}), architecture: f.architecture, parameterCount: f.parameterCount,
        origin: f.origin === 'folder' ? 'file' : f.origin, originName: f.name, quantization: f.quantization, contentHash,
      });
    },
    'adapters.exportGguf': async ({ versionId, destination, kind, type }) => {
      const outputDir = ctx.paths.check(destination, 'export-folder');
      const version = library.versions.get(versionId);
      const adapter = library.adapters.get(version.adapterId);
      const model = library.models.get(adapter.baseModelId);
      return host.call({
        type: 'exportGguf', modelDir: library.models.resolvePath(model.id), kind, outputDir,
        adapters: [{ dir: library.versions.resolvePath(versionId), scale: 1 }], name: `${adapter.name}-v${version.version}`,
        ggufType: type ?? 'F16', ...(model.gguf?.origin === 'ollama' ? { ollamaBase: model.gguf.name } : {}),
      });
    },
  };
}
