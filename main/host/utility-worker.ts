/** The engine side of the utilityProcess host: loaded (dynamically, after the resolve hook) in its worker thread. */
import type { MessagePort } from 'node:worker_threads';
import { loader } from './default-loader';
import { serveOnPort } from './port-serve';

export function serveEngine(port: MessagePort): void {
  serveOnPort(port, loader);
}
