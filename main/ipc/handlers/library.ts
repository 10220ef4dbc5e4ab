/** Handlers for the library's models, datasets, adapters and settings. */
import type { Settings } from '../../../preload/contract';
import { importDataset } from '../../services/datasets';
import { importModel } from '../../services/models';
import { remoteTarget } from '../../host/remote/connection';
import { backendReporter } from '../backend-info';
import { remoteEngineInfo } from '../remote-engine/info';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';

const DEFAULT_SETTINGS: Settings = { backend: 'auto', theme: 'system', defaults: {} };

function readSettings(ctx: HandlerContext): Settings {
  const stored = ctx.library.settings.all() as Partial<Settings>;
  return { ...DEFAULT_SETTINGS, ...stored };
}

export function libraryHandlers(ctx: HandlerContext): Pick<Handlers,
  | 'app.info' | 'settings.get' | 'settings.set' | 'models.list' | 'models.import' | 'models.modules' | 'models.delete'
  | 'datasets.list' | 'datasets.import' | 'datasets.delete' | 'adapters.list' | 'adapters.versions'
  | 'adapters.deleteVersion' | 'adapters.delete' | 'adapters.exportPeft' | 'dialog.openPath'> {
  const { library } = ctx;
  const backend = backendReporter(ctx.host);
  // The engine host starts on the stored backend and remote engine settings; settings.set restarts it when they change.
  void ctx.host.setBackend(readSettings(ctx).backend);
  void ctx.host.setRemote(readSettings(ctx).remoteEngine ?? null);
  return {
    'app.info': async () => {
      const [backendInfo, remoteEngine] = await Promise.all([backend(), remoteEngineInfo(ctx.host)]);
      return { version: ctx.version, dataDir: library.dataDir.root, mode: ctx.mode, backend: backendInfo, remoteEngine };
    },
    'settings.get': async () => readSettings(ctx),
    'settings.set': async (args) => {
      if (args.remoteEngine) remoteTarget(args.remoteEngine); // a bad address or token is refused by name, before it is kept
      library.settings.setMany(JSON.parse(JSON.stringify(args)) as Record<string, never>);
      const settings = readSettings(ctx);
      await ctx.host.setBackend(settings.backend);
      await ctx.host.setRemote(settings.remoteEngine ?? null);
      return settings;
    },
    'models.list': async () => library.models.list(),
    'models.import': async (args) => importModel(library, ctx.files, {
      path: ctx.paths.check(args.path, 'model-folder'), mode: args.mode, ...(args.name ? { name: args.name } : {}),
    }),
    'models.modules': async ({ id }) => ctx.host.call({ type: 'modules', modelDir: library.models.resolvePath(id) }),
    'models.delete': async ({ id }) => {
      library.models.delete(id);
      return { deleted: true };
    },
    'datasets.list': async () => library.datasets.list(),
    'datasets.import': async (args) => importDataset(library, ctx.files, {
      path: ctx.paths.check(args.path, 'dataset-file'), ...(args.format ? { format: args.format } : {}), ...(args.name ? { name: args.name } : {}),
    }),
    'datasets.delete': async ({ id }) => {
      library.datasets.delete(id);
      return { deleted: true };
    },
    'adapters.list': async () => library.adapters.list(),
    'adapters.versions': async ({ adapterId }) => library.versions.list(adapterId),
    'adapters.deleteVersion': async ({ versionId }) => {
      library.versions.delete(versionId);
      return { deleted: true };
    },
    'adapters.delete': async ({ adapterId }) => {
      library.adapters.delete(adapterId);
      return { deleted: true };
    },
    'adapters.exportPeft': async ({ versionId, destination }) => ({
      path: library.versions.exportTo(versionId, ctx.paths.check(destination, 'export-folder')),
    }),
    'dialog.openPath': async ({ purpose }) => ctx.paths.choose(purpose),
  };
}
