/**
 * `train.measurePrecision`: what holding the base at 8 or 4 bits costs on the chosen dataset, measured by the engine
 * in the host (engine/train/precision-cost.ts, `lorasmith train --measure-precision` too), with its progress streamed
 * as `train.precisionProgress` events: at a real size it loads the base three times and scores a few batches each
 * (minutes).
 */
import type { PrecisionCost } from '../../../preload/contract';
import type { HandlerContext } from '../context';
import { IpcError } from '../errors';
import type { Handlers } from '../types';
import { buildJob } from './training';

export function precisionHandlers(ctx: HandlerContext): Pick<Handlers, 'train.measurePrecision' | 'train.stopMeasure'> {
  const { library, host } = ctx;
  /** requestId -> the host request measuring for it. */
  const measuring = new Map<string, number>();
  return {
    'train.measurePrecision': async ({ requestId, ...args }): Promise<PrecisionCost> => {
      if (measuring.has(requestId)) throw new IpcError('BUSY', `request '${requestId}' is already measuring; use a new requestId`);
      const dir = library.dataDir.resolve('runs/.measure');
      const handle = host.request({ type: 'measurePrecision', job: buildJob(ctx, args, dir, dir) }, (event) => {
        if (event.kind === 'precision') ctx.emit('train.precisionProgress', { requestId, ...event.progress });
      });
      measuring.set(requestId, handle.seq);
      try {
        return await handle.result;
      } finally {
        measuring.delete(requestId);
      }
    },
    'train.stopMeasure': async ({ requestId }) => {
      const seq = measuring.get(requestId);
      if (seq === undefined) return { stopped: false };
      // It stops between two batches, or before loading the next copy: a batch at 3B takes minutes on two cores, so the
      // host is given that long before it is stopped the hard way (which would drop the resident base).
      void host.cancel(seq, 600_000);
      return { stopped: true };
    },
  };
}
