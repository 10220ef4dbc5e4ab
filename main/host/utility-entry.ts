/**
 * The engine host inside an Electron utilityProcess (built as out/main/engine-host.js): the same serve() as the
 * worker entry, on the process's parentPort. The app spawns it with main/app/utility-host.ts.
 */
import { HostEngine } from './engine';
import { loader } from './default-loader';
import type { HostMessage, HostRequest } from './protocol';
import { serve } from './serve';

interface ParentPort {
  postMessage(message: HostMessage): void;
  on(event: 'message', listener: (event: { data: HostRequest }) => void): void;
}

const port = (process as NodeJS.Process & { parentPort?: ParentPort }).parentPort;
if (!port) throw new Error('utility-entry must run in an Electron utilityProcess');

serve(
  {
    send: (message) => port.postMessage(message),
    onRequest: (listener) => port.on('message', (event) => listener(event.data)),
  },
  new HostEngine(loader),
  { onShutdown: () => process.exit(0) },
);
