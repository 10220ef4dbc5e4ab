/** Handlers for the library's models, datasets, adapters and settings. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../../engine/io/model-checkpoint';
import { readModelConfig } from '../../engine/models/registry';
import { normalizeDataset, writeNormalizedDataset } from '../../engine/train/datasets/normalize';
import type { Settings } from '../../../preload/contract';
import { backendReporter } from '../backend-info';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';

const DEFAULT_SETTINGS: Settings = { backend: 'auto', theme: 'system', defaults: {} };

export function countParameters(dir: string): number {
  const checkpoint = openCheckpoint(dir);
  try {
    return checkpoint.names().reduce((sum, name) => sum + checkpoint.entry(name).shape.reduce((a, b) => a * b, 1), 0);
  } finally {
    checkpoint.close();
  }
}

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
  return {
    'app.info': async () => ({ version: ctx.version, dataDir: library.dataDir.root, mode: ctx.mode, backend: await backend() }),
    'settings.get': async () => readSettings(ctx),
    'settings.set': async (args) => {
      library.settings.setMany(JSON.parse(JSON.stringify(args)) as Record<string, never>);
      return readSettings(ctx);
    },
    'models.list': async () => library.models.list(),
    'models.import': async (args) => {
      const sourcePath = ctx.paths.check(args.path, 'model-folder');
      const config = readModelConfig(sourcePath); // refuses an unsupported model_type, naming it
      return library.models.import({
        sourcePath, mode: args.mode, ...(args.name ? { name: args.name } : {}),
        architecture: config.modelType, parameterCount: countParameters(sourcePath),
        source: { kind: 'folder', ref: sourcePath },
      });
    },
    'models.modules': async ({ id }) => ctx.host.call({ type: 'modules', modelDir: library.models.resolvePath(id) }),
    'models.delete': async ({ id }) => {
      library.models.delete(id);
      return { deleted: true };
    },
    'datasets.list': async () => library.datasets.list(),
    'datasets.import': async (args) => {
      const sourcePath = ctx.paths.check(args.path, 'dataset-file');
      // Normalising refuses an unreadable file before anything is copied, and detects the format.
      const dataset = normalizeDataset(sourcePath, args.format ? { format: args.format } : {});
      const { report } = dataset;
      // The normalized JSONL is what trains and previews; the store moves it into the dataset's folder.
      const temp = mkdtempSync(join(tmpdir(), 'lorasmith-dataset-'));
      try {
        const normalized = join(temp, 'normalized.jsonl');
        writeNormalizedDataset(normalized, dataset);
        return library.datasets.import({
          sourcePath, format: report.format, ...(args.name ? { name: args.name } : {}),
          normalized: { path: normalized, recordCount: report.valid, skippedCount: report.skipped },
        });
      } finally {
        rmSync(temp, { recursive: true, force: true });
      }
    },
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
