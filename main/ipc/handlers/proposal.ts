/**
 * `train.propose`: the wizard's learning rate, steps and rank for a model and dataset, and the effect of the settings
 * it shows. The rule is the engine's (engine/train/proposal.ts, `lorasmith train`'s defaults too), asked of the host.
 */
import type { TrainingProposal } from '../../../preload/contract';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';

export function proposalHandlers(ctx: HandlerContext): Pick<Handlers, 'train.propose'> {
  const { library, host } = ctx;
  return {
    'train.propose': async ({ modelId, datasetId, settings }): Promise<TrainingProposal> => {
      const input = { parameterCount: library.models.get(modelId).parameterCount, records: library.datasets.get(datasetId).recordCount };
      const assessed = settings ? {
        learningRate: settings.learningRate, batchSize: settings.batchSize, gradAccum: settings.gradAccum, valSplit: settings.valSplit,
        ...(settings.maxSteps !== undefined ? { maxSteps: settings.maxSteps } : {}), ...(settings.epochs !== undefined ? { epochs: settings.epochs } : {}),
        lora: { rank: settings.lora.rank, alpha: settings.lora.alpha, useRslora: settings.lora.useRslora },
      } : null;
      const { proposal, effect } = await host.call({ type: 'proposeTraining', input, settings: assessed });
      return { ...proposal, effect };
    },
  };
}
