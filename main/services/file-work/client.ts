/**
 * The main side's handle on the file workers: a small pool of worker_threads workers, one job each at a time,
 * started on first use. A job runs off the main thread, so Electron's main process and the browser-mode server
 * keep answering while a gigabyte dataset is read. A worker that dies (out of memory, say) fails its job with
 * FILE_WORK_DIED and is replaced by the next job's; the process around it carries on.
 */
import { Worker } from 'node:worker_threads';
import { ServiceError } from '../errors';
import type { FileJob, FileJobResults, WorkerReply, WorkerRequest } from './protocol';

/** Makes one worker thread running worker.ts (plain Node: bootstrap.mjs; the app: its built bundle). */
export type FileWorkerSpawner = () => Worker;

/** V8 heap cap per worker: a runaway job ends its worker, not the app. */
const MAX_HEAP_MB = 2048;

export function nodeFileWorker(): Worker {
  return new Worker(new URL('./bootstrap.mjs', import.meta.url), {
    // The parent's flags are not the worker's business (a test runner's --conditions break tfjs-core's resolution).
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: MAX_HEAP_MB },
  });
}

/** For the app: the bundled worker (electron.config.ts builds main/services/file-work/worker.ts to file-worker.js). */
export function bundledFileWorker(path: string): FileWorkerSpawner {
  return () => new Worker(path, { resourceLimits: { maxOldGenerationSizeMb: MAX_HEAP_MB } });
}

interface Slot {
  readonly worker: Worker;
  busy: boolean;
  lastError: string;
}

interface Waiting {
  readonly job: FileJob;
  readonly resolve: (value: never) => void;
  readonly reject: (error: Error) => void;
}

export class FileWork {
  private readonly slots: Slot[] = [];
  private readonly queue: Waiting[] = [];
  private readonly running = new Map<number, Waiting & { slot: Slot }>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly spawn: FileWorkerSpawner = nodeFileWorker,
    private readonly maxWorkers = 2,
  ) {}

  run<K extends FileJob['kind']>(job: Extract<FileJob, { kind: K }>): Promise<FileJobResults[K]> {
    if (this.closed) return Promise.reject(new ServiceError('FILE_WORK_DIED', 'the file workers are shut down'));
    return new Promise<FileJobResults[K]>((resolve, reject) => {
      this.queue.push({ job, resolve: resolve as (value: never) => void, reject });
      this.dispatch();
    });
  }

  /** Ends every worker; jobs still running fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.queue.splice(0)) w.reject(new ServiceError('FILE_WORK_DIED', 'the file workers are shutting down'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.slots.find((s) => !s.busy) ?? (this.slots.length < this.maxWorkers ? this.start() : null);
      if (!slot) return;
      const waiting = this.queue.shift() as Waiting;
      const id = this.nextId++;
      slot.busy = true;
      slot.worker.ref(); // a job in progress keeps the process alive; an idle worker does not
      this.running.set(id, { ...waiting, slot });
      slot.worker.postMessage({ id, job: waiting.job } satisfies WorkerRequest);
    }
  }

  private start(): Slot {
    const worker = this.spawn();
    const slot: Slot = { worker, busy: false, lastError: '' };
    worker.on('message', (reply: WorkerReply) => {
      const entry = this.running.get(reply.id);
      if (!entry) return;
      this.running.delete(reply.id);
      slot.busy = false;
      worker.unref();
      if (reply.ok) entry.resolve(reply.result as never);
      else entry.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name, code: reply.error.code }));
      this.dispatch();
    });
    worker.on('error', (error) => {
      slot.lastError = `${(error as { code?: string }).code ?? error.name}: ${error.message}`;
    });
    worker.on('exit', (code) => {
      this.slots.splice(this.slots.indexOf(slot), 1);
      for (const [id, entry] of this.running) {
        if (entry.slot !== slot) continue;
        this.running.delete(id);
        entry.reject(new ServiceError('FILE_WORK_DIED',
          `reading files stopped (${slot.lastError || `exit code ${code}`}) while doing '${entry.job.kind}'; the file may be too large to read, or try again`));
      }
      if (!this.closed) this.dispatch();
    });
    this.slots.push(slot);
    return slot;
  }
}
