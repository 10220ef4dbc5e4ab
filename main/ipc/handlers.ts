/** Every command's handler, composed from the room-sized files under handlers/. */
import type { HandlerContext } from './context';
import { adapterToolHandlers } from './handlers/adapter-tools';
import { chatHandlers } from './handlers/chat';
import { downloadHandlers } from './handlers/download';
import { firstRunHandlers } from './handlers/first-run';
import { ggufHandlers } from './handlers/gguf';
import { handoffHandlers } from './handlers/handoff';
import { libraryHandlers } from './handlers/library';
import { precisionHandlers } from './handlers/precision';
import { previewHandlers } from './handlers/preview';
import { proposalHandlers } from './handlers/proposal';
import { trainingHandlers } from './handlers/training';
import type { Handlers } from './types';

export interface AppHandlers {
  readonly handlers: Handlers;
  /** For shutdown: cancel running trainings and wait until their runs are recorded. */
  cancelTraining(): Promise<void>;
}

export function createHandlers(ctx: HandlerContext): AppHandlers {
  const training = trainingHandlers(ctx);
  const { cancelAll, ...trainingCommands } = training;
  const handlers: Handlers = {
    ...libraryHandlers(ctx),
    ...previewHandlers(ctx),
    ...trainingCommands,
    ...chatHandlers(ctx),
    ...firstRunHandlers(ctx),
    ...downloadHandlers(ctx),
    ...ggufHandlers(ctx),
    ...handoffHandlers(ctx),
    ...adapterToolHandlers(ctx),
    ...proposalHandlers(ctx),
    ...precisionHandlers(ctx),
  };
  return { handlers, cancelTraining: cancelAll };
}
