/** `app.firstRun`: the starter samples and the guided first fine-tune (see services/first-run.ts). */
import type { HandlerContext } from '../context';
import { firstRunInfo } from '../../services/first-run';
import type { Handlers } from '../types';

export function firstRunHandlers(ctx: HandlerContext): Pick<Handlers, 'app.firstRun'> {
  return {
    'app.firstRun': async () => firstRunInfo(ctx.library, ctx.resourcesDir),
  };
}
