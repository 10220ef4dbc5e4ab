// Lets plain Node run the TypeScript sources: tsx for .ts files, then a resolve hook for tfjs-core's
// extensionless ESM imports (main/engine/backend/tfjs-esm-resolve.mjs says why).
// Use: `node --import ./bin/register-ts.js file.ts`, or import it first in a JS entry.
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';

registerTsx();
register('../main/engine/backend/tfjs-esm-resolve.mjs', import.meta.url);
