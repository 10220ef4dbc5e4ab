/**
 * Runs handed to transformers + PEFT + accelerate and back: the wizard's "Export for PEFT + accelerate" (the engine
 * writes the folder in the host, from the same job a local run would get) and the Adapters view's "Import a run"
 * (services/run-import.ts, the CLI's import-run too).
 */
import { importRunResult } from '../../services/run-import';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';
import { buildJob } from './training';

export function handoffHandlers(ctx: HandlerContext): Pick<Handlers, 'runs.exportForPeft' | 'runs.importResult'> {
  const { library, host } = ctx;
  return {
    'runs.exportForPeft': async ({ destination, ...input }) => {
      const outputDir = ctx.paths.check(destination, 'export-folder');
      const model = library.models.get(input.modelId);
      const job = buildJob(ctx, input, outputDir, outputDir);
      return host.call({
        type: 'exportRun', job, hubId: model.source.kind === 'hub' ? model.source.ref : null,
        library: { modelId: input.modelId, datasetId: input.datasetId, ...(input.parentVersionId ? { parentVersionId: input.parentVersionId } : {}) },
      });
    },
    'runs.importResult': async ({ path, adapterName }) => {
      const done = await importRunResult(library, ctx.files, ctx.paths.check(path, 'run-folder'), adapterName ? { adapterName } : {});
      return { version: done.version, adapterName: done.adapterName, trainedOn: done.trainedOn, warnings: [...done.warnings] };
    },
  };
}
