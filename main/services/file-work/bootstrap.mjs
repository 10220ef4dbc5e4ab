// The file worker's first module in plain Node (CLI, tests, browser mode): registers tsx and the tfjs ESM resolve
// hook, then runs the TypeScript worker. Loader hooks do not cross into workers. (The app runs a built bundle.)
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';

registerTsx();
register(new URL('../../engine/backend/tfjs-esm-resolve.mjs', import.meta.url));
await import('./worker.ts');
