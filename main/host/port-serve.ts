/**
 * serve() on a worker thread's parentPort, with polling: the engine's loops run many steps without yielding to
 * the event loop, so between steps serve() drains waiting messages synchronously (receiveMessageOnPort) and a
 * cancel takes effect while a run is busy.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { HostEngine } from './engine';
import type { HostModelLoader } from './model-loader';
import type { HostRequest } from './protocol';
import { serve } from './serve';

export function serveOnPort(port: MessagePort, loader: HostModelLoader): void {
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
}
