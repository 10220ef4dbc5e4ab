/**
 * The Adapters view's tools: a PEFT folder from elsewhere checked against a base and imported (services/
 * adapter-import.ts, the check in the file worker), a version's singular-value spectrum, and its rank reduction as
 * a new version (the engine host runs the CLI's `adapter analyze|reduce`; nothing here reads weights).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterSpectrum, RankReduction } from '../../../preload/contract';
import { tempSibling } from '../../common/atomic';
import { checkPeftAdapter, importPeftFolder } from '../../services/adapter-import';
import { NOTE_FILE } from '../../store/repos/versions';
import type { HandlerContext } from '../context';
import { IpcError } from '../errors';
import type { Handlers } from '../types';

export function adapterToolHandlers(ctx: HandlerContext): Pick<Handlers, 'adapters.checkPeft' | 'adapters.importPeft' | 'adapters.analyze' | 'adapters.reduce'> {
  const { library, host } = ctx;
  const baseOf = (versionId: string) => library.adapters.get(library.versions.get(versionId).adapterId).baseModelId;

  return {
    'adapters.checkPeft': async ({ path, modelId }) => {
      library.models.get(modelId); // NOT_FOUND names it before the worker reads anything
      return checkPeftAdapter(library, ctx.files, ctx.paths.check(path, 'adapter-folder'), modelId);
    },
    'adapters.importPeft': async ({ path, modelId, name }) => {
      const done = await importPeftFolder(library, ctx.files, ctx.paths.check(path, 'adapter-folder'), modelId, name);
      return { version: done.version, adapterName: done.adapterName, preflight: done.preflight };
    },
    'adapters.analyze': async ({ versionId }): Promise<AdapterSpectrum> => {
      const analysis = await host.call({
        type: 'analyzeAdapter', adapterDir: library.versions.resolvePath(versionId), modelDir: library.models.resolvePath(baseOf(versionId)),
      });
      return {
        meanRankFor99Fraction: analysis.meanRankFor99Fraction,
        modules: analysis.modules.map((m) => ({
          path: m.path, rank: m.rank, inFeatures: m.inFeatures, outFeatures: m.outFeatures, singularValues: m.singularValues,
          effectiveRank: m.effectiveRank, numericalRank: m.numericalRank, rankFor99: m.rankFor99, deltaNorm: m.deltaNorm,
          relativeToBase: m.relativeToBase,
        })),
      };
    },
    'adapters.reduce': async ({ versionId, rank }) => {
      const source = library.versions.get(versionId);
      if (source.status !== 'ok') throw new IpcError('INVALID_INPUT', `version ${versionId} is ${source.status}; only a usable version can be reduced`);
      const adapter = library.adapters.get(source.adapterId);
      // The host writes the reduced folder inside the data directory (a temp name that a start-up after a crash
      // sweeps); the store then moves it into the next version.
      const staging = tempSibling(library.dataDir.resolve('runs/reduce'));
      try {
        const { report } = await host.call({ type: 'reduceAdapter', adapterDir: library.versions.resolvePath(versionId), rank, outputDir: staging });
        const fromRanks = [...new Set(report.modules.map((m) => m.fromRank))].join('/');
        if (report.modules.every((m) => m.fromRank <= rank)) {
          throw new IpcError('INVALID_INPUT', `every module of ${adapter.name} v${source.version} has rank ${fromRanks} already; choose a rank below it to reduce`);
        }
        const error = report.overallRelativeError;
        writeFileSync(join(staging, NOTE_FILE), JSON.stringify({
          description: `rank ${fromRanks} → ${rank} by truncated SVD of ${adapter.name} v${source.version} (relative error ${error.toFixed(4)})`,
        }, null, 2) + '\n');
        const settings = source.settings ? { ...source.settings, lora: { ...source.settings.lora, rank, alpha: rank, useRslora: false } } : null;
        const version = library.versions.commit({
          adapterId: adapter.id, filesFrom: staging, take: 'move', origin: 'imported', parentVersionId: source.id,
          datasetId: source.datasetId, settings,
        });
        const result: RankReduction = { rank, overallRelativeError: error, modules: report.modules };
        return { version, report: result };
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
    },
  };
}
