/** The file worker thread: runs one job at a time (jobs.ts) and answers each by its id. */
import { parentPort } from 'node:worker_threads';
import { runJob } from './jobs';
import type { WorkerReply, WorkerRequest } from './protocol';

if (!parentPort) throw new Error('file-work/worker.ts must run in a worker thread');
const port = parentPort;

port.on('message', (request: WorkerRequest) => {
  void runJob(request.job).then(
    (result) => port.postMessage({ id: request.id, ok: true, result } satisfies WorkerReply),
    (error: unknown) => {
      const e = error instanceof Error ? error : new Error(String(error));
      const code = (e as { code?: unknown }).code;
      port.postMessage({
        id: request.id, ok: false,
        error: { name: e.name || 'Error', code: typeof code === 'string' && code !== '' ? code : 'INTERNAL', message: e.message },
      } satisfies WorkerReply);
    },
  );
});
