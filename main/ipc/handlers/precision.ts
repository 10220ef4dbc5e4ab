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

/**
 * How long a stopped measuring is given to stop between two batches before its host is stopped the hard way (which
 * would drop the resident base): a batch at 3B takes minutes on two cores. A remote engine gives it as long.
 */
export const MEASURE_STOP_GRACE_MS = 600_000;

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
      // It stops between two batches, or before loading the next copy.
      void host.cancel(seq, MEASURE_STOP_GRACE_MS);
      return { stopped: true };
    },
  };
}
