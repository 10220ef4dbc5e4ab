/**
 * The engine host's backend report for `app.info` (Settings shows what was detected). Asking starts the host
 * and initialises its backend, which can take seconds: while the host is not running yet app.info answers null
 * at once (the UI's first load does not wait) and the report is ready on a later ask; with a running host it
 * waits a moment. A report is kept while the host that made it runs (a restart with another backend setting makes
 * a new one); a failed ask is retried next time.
 */
import type { BackendInfo } from '../../preload/contract';
import type { HostClient } from '../host/client';

export const BACKEND_WAIT_MS = 1500;

export function backendReporter(host: Pick<HostClient, 'call' | 'running' | 'generation'>, waitMs = BACKEND_WAIT_MS): () => Promise<BackendInfo | null> {
  let known: BackendInfo | null = null;
  let knownFrom = -1;
  let asking: Promise<BackendInfo | null> | null = null;
  return async () => {
    if (known && knownFrom === host.generation) return known;
    const wait = host.running ? waitMs : 0;
    asking ??= host.call({ type: 'backend' }).then(
      (info) => {
        knownFrom = host.generation;
        return (known = {
          name: info.name, requested: info.requested, available: info.available.map((b) => ({ ...b })),
          matmulKernels: info.matmulKernels, selfTest: info.selfTest, fallback: info.fallback,
        });
      },
      () => null, // the host died or refused: null now, asked again next time
    ).finally(() => (asking = null));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), wait)));
    try {
      return await Promise.race([asking, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}
