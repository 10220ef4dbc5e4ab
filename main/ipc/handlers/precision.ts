/**
 * `train.measurePrecision`: what holding the base at 8 bits costs on the chosen dataset, measured by the engine in
 * the host (engine/train/precision-cost.ts, `lorasmith train --measure-precision` too), with its progress streamed as
 * `train.precisionProgress` events: at a real size it loads the base twice and scores a few batches (minutes).
 */
import type { PrecisionCost } from '../../../preload/contract';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';
import { buildJob } from './training';

export function precisionHandlers(ctx: HandlerContext): Pick<Handlers, 'train.measurePrecision'> {
  const { library, host } = ctx;
  return {
    'train.measurePrecision': async ({ requestId, ...args }): Promise<PrecisionCost> => {
      const dir = library.dataDir.resolve('runs/.measure');
      return host.call({ type: 'measurePrecision', job: buildJob(ctx, args, dir, dir) }, (event) => {
        if (event.kind === 'precision') ctx.emit('train.precisionProgress', { requestId, ...event.progress });
      });
    },
  };
}
