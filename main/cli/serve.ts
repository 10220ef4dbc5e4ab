/** `lorasmith serve`: the app's interface and engine in the browser, on 127.0.0.1 only, behind a one-time token. */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveDataDir } from '../app/data-dir';
import { HostClient } from '../host/client';
import { withRemoteEngine } from '../host/remote/remote-host';
import { workerHost } from '../host/worker-host';
import { startBrowserServer, type BrowserServer } from '../ipc/browser-server';
import { createHandlers } from '../ipc/handlers';
import { typedPaths } from '../ipc/paths';
import { remoteEngineEndpoint } from '../ipc/remote-engine/endpoint';
import { FileWork } from '../services/file-work/client';
import { openStarterResources } from '../services/first-run';
import { heldModel, recordedModelHash } from '../services/remote-engine';
import { openLibrary } from '../store/index';
import { UsageError, type CliCommand, type CliIo } from './command';
import { packageVersion as version } from './version';

const RENDERER_DIR = fileURLToPath(new URL('../../out/renderer', import.meta.url));
/** The starter model and sample datasets (resources/starter, resources/samples) registered on the first run. */
const RESOURCES_DIR = fileURLToPath(new URL('../../resources', import.meta.url));

function parseServeArgs(argv: readonly string[]): { port: number; dataDir: string | undefined } {
  let port = 0;
  let dataDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === '--port') {
      if (value === undefined || !/^\d+$/.test(value) || Number(value) > 65535) throw new UsageError(`--port takes a number from 0 to 65535, got '${value ?? ''}'`);
      port = Number(value);
      i++;
    } else if (arg === '--data-dir') {
      if (!value) throw new UsageError('--data-dir takes a folder path');
      dataDir = value;
      i++;
    } else {
      throw new UsageError(`unknown option '${arg}' for serve; see 'lorasmith serve --help'`);
    }
  }
  return { port, dataDir };
}

export interface ServeOptions {
  readonly dataDir: string;
  readonly port: number;
  /** The built renderer to serve (out/renderer). */
  readonly rendererDir: string;
  /** Where starter/ and samples/ are, registered into an empty library. */
  readonly resourcesDir: string;
}

/** Opens the library, starts the engine host and the server, and serves until io.signal aborts. */
export async function serveLibrary(options: ServeOptions, io: CliIo): Promise<number> {
  const { dataDir } = options;
  const library = openLibrary(dataDir, { holder: 'lorasmith serve' });
  const stale = library.lock?.tookOverFrom;
  if (stale) io.out(`Took over the library from ${stale.command} (pid ${stale.pid}, since ${stale.since}), which stopped without closing it.`);
  const report = library.startupCheck();
  if (report.runsInterrupted.length > 0) io.out(`Marked ${report.runsInterrupted.length} interrupted training run(s); they can be resumed from their last checkpoint.`);
  if (report.tempsRemoved.length > 0) io.out(`Removed ${report.tempsRemoved.length} unfinished write(s) left by a process that stopped: ${report.tempsRemoved.map((p) => relative(dataDir, p)).join(', ')}`);
  if (report.foldersRemoved.length > 0) io.out(`Removed ${report.foldersRemoved.length} folder(s) no record points at (an import or a delete that stopped midway): ${report.foldersRemoved.join(', ')}`);
  if (report.downloadsRemoved.length > 0) io.out(`Removed ${report.downloadsRemoved.length} unfinished download(s): ${report.downloadsRemoved.join(', ')}`);
  if (report.versionsRecorded.length > 0) io.out(`Recorded ${report.versionsRecorded.length} adapter version(s) whose saving a stop interrupted: ${report.versionsRecorded.join(', ')}`);
  if (report.orphanFolders.length > 0) io.out(`Adapter version folders with no record (kept; see them in ${dataDir}): ${report.orphanFolders.join(', ')}`);
  const files = new FileWork();
  try {
    if ((await openStarterResources(library, files, options.resourcesDir))?.registered) io.out('Added the starter model and the sample datasets to the empty library.');
  } catch (error) {
    io.err(`Could not add the starter model and samples: ${(error as Error).message}`);
  }
  let server: BrowserServer | null = null;
  const host = new HostClient(withRemoteEngine(workerHost(), version(), (path) => recordedModelHash(library, path)), {
    onState: (state, detail) => server?.emit('host.status', { state: state === 'stopped' ? 'died' : state, ...(detail ? { detail } : {}) }),
  });
  const app = createHandlers({
    library, host, files, paths: typedPaths(), mode: 'browser', version: version(), resourcesDir: options.resourcesDir,
    emit: (name, payload) => server?.emit(name, payload),
  });
  server = await startBrowserServer({
    handlers: () => app.handlers, rendererDir: options.rendererDir, port: options.port,
    // Apps on other machines train and chat on this one's engine through an SSH tunnel (same token).
    engineSocket: remoteEngineEndpoint({ dataDir, host, version: version(), held: (ref) => heldModel(library, ref), onError: (where, error) => io.err(`lorasmith serve: ${where}: ${error instanceof Error ? error.message : String(error)}`) }),
    onError: (where, error) => io.err(`lorasmith serve: ${where}: ${error instanceof Error ? error.message : String(error)}`),
  });
  io.out(`Lorasmith is serving the library in ${dataDir}`);
  io.out(`Open ${server.url}`);
  io.out('Only this machine can connect; the address carries a one-time token, keep it private. Stop with Ctrl-C.');
  io.out(`To train from another machine: \`ssh -N -L ${server.port}:127.0.0.1:${server.port} <this machine>\` there, then Settings → Remote engine: 127.0.0.1:${server.port} and this token.`);
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) return resolve();
    io.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  io.out('Stopping: cancelling training (its last checkpoint is kept) and shutting the engine down...');
  await app.cancelTraining();
  await host.shutdown();
  await server.close();
  await files.close();
  library.close();
  return 0;
}

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'serve the app in your browser on 127.0.0.1 (browser mode)',
  usage: 'lorasmith serve [--port P] [--data-dir D]\n\n  --port P       port on 127.0.0.1 (default: a free one)\n  --data-dir D   the library folder (default: $LORASMITH_HOME, else ~/.local/share/lorasmith or the OS equivalent)',
  async run(argv, io) {
    const { port, dataDir } = parseServeArgs(argv);
    if (!existsSync(RENDERER_DIR)) throw new UsageError(`the interface is not built (${RENDERER_DIR} is missing); run 'npm run build' first`);
    return serveLibrary({ dataDir: resolveDataDir(dataDir), port, rendererDir: RENDERER_DIR, resourcesDir: RESOURCES_DIR }, io);
  },
};
