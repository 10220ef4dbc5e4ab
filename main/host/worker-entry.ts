/** The engine host in a worker thread (CLI, tests, browser mode). workerData.loaderUrl picks the model loader. */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { HostEngine } from './engine';
import type { ModelLoaderModule } from './model-loader';
import type { HostRequest } from './protocol';
import { serve } from './serve';

const port = parentPort;
if (!port) throw new Error('worker-entry.ts must run in a worker thread');
const data = (workerData ?? {}) as { loaderUrl?: string };
const loaderUrl = data.loaderUrl ?? new URL('./default-loader.ts', import.meta.url).href;
const { loader } = (await import(loaderUrl)) as ModelLoaderModule;

let deliver: (request: HostRequest) => void = () => undefined;
serve(
  {
    send: (message) => port.postMessage(message),
    onRequest: (listener) => {
      deliver = listener;
      port.on('message', (message: HostRequest) => listener(message));
    },
    poll: () => {
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) deliver(m.message as HostRequest);
    },
  },
  new HostEngine(loader),
  { onShutdown: () => process.exit(0) },
);
