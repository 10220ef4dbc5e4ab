/** The engine host in a worker thread (CLI, tests, browser mode). workerData.loaderUrl picks the model loader. */
import { parentPort, workerData } from 'node:worker_threads';
import type { HostModelLoaderModule } from './model-loader';
import { serveOnPort } from './port-serve';

if (!parentPort) throw new Error('worker-entry.ts must run in a worker thread');
const data = (workerData ?? {}) as { loaderUrl?: string };
const loaderUrl = data.loaderUrl ?? new URL('./default-loader.ts', import.meta.url).href;
const { loader } = (await import(loaderUrl)) as HostModelLoaderModule;
serveOnPort(parentPort, loader);
