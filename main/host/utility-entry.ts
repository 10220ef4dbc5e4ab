/**
 * The engine host inside an Electron utilityProcess (built as out/main/engine-host.js). The process's main thread
 * only relays messages between the app and a worker thread running this same file, where the engine runs: a
 * training loop that computes step after step never starves the relay, so a cancel always gets through (the
 * worker polls for it between steps). If the worker dies, the process exits and the app sees HOST_DIED.
 */
import { register } from 'node:module';
import { isMainThread, parentPort as workerPort, Worker } from 'node:worker_threads';
import type { HostMessage, HostRequest } from './protocol';

/**
 * tfjs-core publishes its gradient registrations only as ESM with extensionless imports, which Node's resolver
 * refuses; the build leaves node_modules external, so the built host needs the retry-with-'.js' hook of
 * main/engine/backend/tfjs-esm-resolve.mjs, here also for the bare 'tfjs-core/dist/...' deep imports that tsx
 * resolves in development (inlined: the source tree is not there in a packaged app).
 */
const TFJS_RESOLVE_HOOK = `export async function resolve(specifier, context, next) {
  try { return await next(specifier, context); } catch (error) {
    const fixable = error?.code === 'ERR_UNSUPPORTED_DIR_IMPORT' || error?.code === 'ERR_MODULE_NOT_FOUND';
    const tfjs = specifier.startsWith('@tensorflow/') || (specifier.startsWith('.') && context.parentURL?.includes('/@tensorflow/'));
    if (fixable && tfjs && !specifier.endsWith('.js')) {
      return next(specifier + '.js', context);
    }
    throw error;
  }
}`;

interface UtilityParentPort {
  postMessage(message: HostMessage): void;
  on(event: 'message', listener: (event: { data: HostRequest }) => void): void;
}

if (!isMainThread && workerPort) {
  register(`data:text/javascript,${encodeURIComponent(TFJS_RESOLVE_HOOK)}`);
  const { serveEngine } = await import('./utility-worker');
  serveEngine(workerPort);
} else {
  const appPort = (process as NodeJS.Process & { parentPort?: UtilityParentPort }).parentPort;
  if (!appPort) throw new Error('engine-host.js must run in an Electron utilityProcess');
  const engine = new Worker(new URL(import.meta.url));
  engine.on('message', (message: HostMessage) => appPort.postMessage(message));
  appPort.on('message', (event) => engine.postMessage(event.data));
  engine.on('error', (error) => console.error(`engine worker failed: ${error.stack ?? error.message}`));
  engine.on('exit', (code) => process.exit(code === 0 ? 0 : 1));
}
