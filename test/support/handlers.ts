/**
 * The app's command handlers as `lorasmith serve` and the app build them (main/ipc/handlers.ts createHandlers), for
 * the tests that drive them: a real library in a temp data folder, a real engine host in a worker thread (started by
 * its first job), the file workers, and the renderer's Api over the in-memory IPC pair. One per test file:
 * `handlersUnderTest()` in beforeAll, `close()` in afterAll.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Api, Events } from '../../preload/contract';
import { HostClient, type HostSpawner } from '../../main/host/client';
import { workerHost } from '../../main/host/worker-host';
import type { HandlerContext } from '../../main/ipc/context';
import { createHandlers, type AppHandlers } from '../../main/ipc/handlers';
import { memoryPair } from '../../main/ipc/memory';
import { typedPaths } from '../../main/ipc/paths';
import { FileWork } from '../../main/services/file-work/client';
import { openLibrary, type Library } from '../../main/store/index';
import { nextEvent } from './events';

export interface HandlersUnderTest {
  /** The test's folder: the library is in data/, the test's own files go beside it. */
  readonly dir: string;
  readonly library: Library;
  readonly host: HostClient;
  readonly files: FileWork;
  readonly app: AppHandlers;
  /** The renderer's side of the pair. */
  readonly api: Api;
  /** The next event of a name (matching `where`) the handlers emit. */
  nextEvent<E extends keyof Events>(name: E, where?: (p: Events[E]) => boolean): Promise<Events[E]>;
  /** Writes `content` to `name` in dir; returns its path. */
  writeFile(name: string, content: string | Buffer): string;
  /** Shuts the host and the file workers down, closes the library, and removes the folder it made. */
  close(): Promise<void>;
}

export interface HandlersOptions {
  /** The folder to use (kept by close()); a new temp folder, removed by close(), where absent. */
  readonly dir?: string;
  /** Context the test sets: a fake hub's URL, GGUF folders to search, starter resources. */
  readonly context?: Partial<Pick<HandlerContext, 'hubUrl' | 'ggufFolders' | 'resourcesDir' | 'version'>>;
  /** Where events go instead of the pair (a browser server's sockets). */
  readonly emit?: HandlerContext['emit'];
  /** How the engine host starts, given the library (as `lorasmith serve` composes it); default a worker thread. */
  readonly spawner?: (library: Library) => HostSpawner;
}

export function handlersUnderTest(options: HandlersOptions = {}): HandlersUnderTest {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'lorasmith-handlers-'));
  const library = openLibrary(join(dir, 'data'));
  const host = new HostClient(options.spawner?.(library) ?? workerHost());
  const files = new FileWork();
  const pair = memoryPair(() => app.handlers);
  const app = createHandlers({
    library, host, files, paths: typedPaths(), mode: 'browser', version: '0.0.0-test', ...options.context,
    emit: options.emit ?? pair.emit,
  });
  return {
    dir, library, host, files, app, api: pair.api,
    nextEvent: (name, where) => nextEvent(pair.api, name, where),
    writeFile(name, content) {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    },
    async close() {
      await host.shutdown();
      await files.close();
      library.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
