// The worker thread's first module: plain JavaScript that registers tsx and the tfjs ESM resolve hook, so the
// TypeScript host runs without a build step (CLI, tests, browser mode). Loader hooks do not cross into workers.
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';

registerTsx();
register(new URL('../engine/backend/tfjs-esm-resolve.mjs', import.meta.url));
await import('./worker-entry.ts');
