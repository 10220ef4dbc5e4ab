/** Spawns the engine host in a worker_threads Worker (plain Node: CLI, tests, browser mode). */
import { env } from 'node:process';
import { Worker } from 'node:worker_threads';
import type { HostProcess, HostSettings, HostSpawner } from './client';
import type { HostMessage } from './protocol';

export interface WorkerHostOptions {
  /** URL of a module exporting `loader: HostModelLoader`; the real architectures by default. */
  readonly loaderUrl?: string;
  /** V8 heap cap for the worker; exceeding it ends the worker (reported as HOST_DIED), not the app. */
  readonly maxHeapMb?: number;
}

export function workerHost(options: WorkerHostOptions = {}): HostSpawner {
  return (settings: HostSettings) => {
    const worker = new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), {
      workerData: { ...(options.loaderUrl ? { loaderUrl: options.loaderUrl } : {}) },
      env: { ...env, LORASMITH_BACKEND: settings.backend },
      // The parent's flags are not the host's business (a test runner's --conditions break tfjs-core's resolution).
      execArgv: [],
      ...(options.maxHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb } } : {}),
    });
    let lastError = '';
    worker.on('error', (error) => {
      lastError = `${(error as { code?: string }).code ?? error.name}: ${error.message}`;
    });
    const process: HostProcess = {
      post: (request) => worker.postMessage(request),
      onMessage: (listener) => worker.on('message', (message: HostMessage) => listener(message)),
      onExit: (listener) => worker.on('exit', (code) => listener(lastError || `exit code ${code}`)),
      kill: () => void worker.terminate(),
    };
    return process;
  };
}
