/** datasets.preview: the first records as the model will see them (template applied, trained spans marked). */
import { previewDataset } from '../../services/datasets';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';

export function previewHandlers(ctx: HandlerContext): Pick<Handlers, 'datasets.preview'> {
  return {
    // Read and tokenized in the file worker: a huge record or file never holds up the main thread.
    'datasets.preview': async ({ id, modelId, limit }) => previewDataset(ctx.library, ctx.files, id, modelId, limit),
  };
}
