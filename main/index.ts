/**
 * Composition root of the Electron app: windows, lifecycle, the store, the engine host, IPC registration.
 * Nothing else imports electron's app-level modules.
 */
import { app, BrowserWindow, dialog, ipcMain, session, shell, type WebContents } from 'electron';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PathPurpose } from '../preload/contract';
import { resolveDataDir } from './app/data-dir';
import { fileLogger } from './app/log';
import { installMenu } from './app/menu';
import { CONTENT_SECURITY_POLICY, secureWebPreferences } from './app/security';
import { utilityHost } from './app/utility-host';
import { loadWindowState, saveWindowState } from './app/window-state';
import { HostClient } from './host/client';
import { withRemoteEngine } from './host/remote/remote-host';
import { recordedModelHash } from './services/remote-engine';
import { registerIpc, sendEvent } from './ipc/electron';
import { createHandlers, type AppHandlers } from './ipc/handlers';
import { dialogPaths } from './ipc/paths';
import { bundledFileWorker, FileWork } from './services/file-work/client';
import { openStarterResources } from './services/first-run';
import { openLibrary, type Library } from './store/index';

const isSingleInstance = app.requestSingleInstanceLock();
if (!isSingleInstance) app.quit();

const argFlag = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const dataDir = resolveDataDir(argFlag('--data-dir'), process.env, app.getPath('userData'));
const log = fileLogger(join(dataDir, 'logs'));
let mainWindow: BrowserWindow | null = null;
let library: Library | null = null;
let host: HostClient | null = null;
let handlers: AppHandlers | null = null;
let files: FileWork | null = null;

/** better-sqlite3 rebuilt for Electron's ABI by scripts/start.js (never in node_modules, which tests use). */
function electronSqliteBinding(): string | undefined {
  const file = join(app.getAppPath(), '.electron-native', 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
  return existsSync(file) ? file : undefined;
}

/** starter/ and samples/: electron-builder's extraResources in a packaged app, the repository's resources/ in development. */
function resourcesDir(): string {
  return app.isPackaged ? process.resourcesPath : join(app.getAppPath(), 'resources');
}

function appVersion(): string {
  return (JSON.parse(readFileSync(join(app.getAppPath(), 'package.json'), 'utf8')) as { version: string }).version;
}

async function showPathDialog(purpose: PathPurpose): Promise<string | null> {
  const parent = mainWindow ?? undefined;
  if (purpose === 'export-folder') {
    const result = parent ? await dialog.showSaveDialog(parent, { title: 'Export to', properties: ['createDirectory'] }) : await dialog.showSaveDialog({ title: 'Export to' });
    return result.canceled || !result.filePath ? null : result.filePath;
  }
  const options: Electron.OpenDialogOptions = purpose === 'model-folder'
    ? { title: 'Choose a Hugging Face model folder', properties: ['openDirectory'] }
    : purpose === 'run-folder'
    ? { title: 'Choose the output folder of a run trained with transformers + PEFT', properties: ['openDirectory'] }
    : purpose === 'adapter-folder'
    ? { title: 'Choose a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)', properties: ['openDirectory'] }
    : { title: 'Choose a dataset', properties: ['openFile'], filters: [{ name: 'Datasets', extensions: ['jsonl', 'json', 'csv', 'txt'] }] };
  const result = parent ? await dialog.showOpenDialog(parent, options) : await dialog.showOpenDialog(options);
  return result.canceled ? null : (result.filePaths[0] ?? null);
}

function createWindow(): BrowserWindow {
  const state = loadWindowState(dataDir);
  const window = new BrowserWindow({
    ...state,
    minWidth: 960,
    minHeight: 640,
    show: false,
    title: 'Lorasmith',
    webPreferences: secureWebPreferences(join(import.meta.dirname, '../preload/index.cjs')),
  });
  if (state.maximized) window.maximize();
  window.once('ready-to-show', () => window.show());
  window.on('close', () => {
    saveWindowState(dataDir, { ...window.getNormalBounds(), maximized: window.isMaximized() });
  });
  // No navigation away from the app and no new windows; external links open in the system browser.
  window.webContents.on('will-navigate', (event) => event.preventDefault());
  window.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url);
    return { action: 'deny' };
  });
  const devUrl = process.env.ELECTRON_RENDERER_URL;
  if (devUrl) void window.loadURL(devUrl);
  else void window.loadFile(join(import.meta.dirname, '../renderer/index.html'));
  return window;
}

async function startServices(): Promise<void> {
  const binding = electronSqliteBinding();
  library = openLibrary(dataDir, { holder: 'the Lorasmith app', ...(binding ? { nativeBinding: binding } : {}) });
  const report = library.startupCheck();
  log.info(`library ${dataDir}: ${JSON.stringify({
    interrupted: report.runsInterrupted.length, modelsMissing: report.modelsMissing.length, tempsRemoved: report.tempsRemoved,
    foldersRemoved: report.foldersRemoved, downloadsRemoved: report.downloadsRemoved, versionsRecorded: report.versionsRecorded,
    orphanVersionFolders: report.orphanFolders,
  })}`);
  // Users' files are read in worker threads (the bundled file-worker.js), never in this process's event loop.
  files = new FileWork(bundledFileWorker(join(import.meta.dirname, 'file-worker.js')));
  try {
    if ((await openStarterResources(library, files, resourcesDir()))?.registered) log.info('first run: registered the starter model and the sample datasets');
  } catch (error) {
    log.error('could not register the starter model and samples', error);
  }
  const emitAll = <E extends Parameters<typeof sendEvent>[1]>(name: E, payload: Parameters<typeof sendEvent<E>>[2]) =>
    sendEvent(BrowserWindow.getAllWindows().map((w) => w.webContents), name, payload);
  const engine = utilityHost(join(import.meta.dirname, 'engine-host.js'), (line) => log.info(line));
  const opened = library;
  host = new HostClient(withRemoteEngine(engine, appVersion(), (path) => recordedModelHash(opened, path)), {
    onState: (state, detail) => {
      log.info(`engine host ${state}${detail ? `: ${detail}` : ''}`);
      emitAll('host.status', { state: state === 'stopped' ? 'died' : state, ...(detail ? { detail } : {}) });
    },
  });
  handlers = createHandlers({
    library, host, files, paths: dialogPaths(showPathDialog), mode: 'electron', version: appVersion(), resourcesDir: resourcesDir(), emit: emitAll,
  });
  const trusted = (sender: WebContents) => mainWindow !== null && sender === mainWindow.webContents;
  registerIpc(ipcMain, handlers.handlers, trusted);
}

app.on('second-instance', () => {
  if (mainWindow) {
    if (mainWindow.isMinimized()) mainWindow.restore();
    mainWindow.focus();
  }
});

app.on('web-contents-created', (_event, contents) => {
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
});

void app.whenReady().then(async () => {
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({
      responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] },
    });
  });
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  try {
    await startServices();
  } catch (error) {
    log.error('could not open the library', error);
    dialog.showErrorBox('Lorasmith cannot start', `${(error as Error).message}\n\nLog: ${log.file}`);
    app.exit(1);
    return;
  }
  installMenu({ dataDir, logFile: log.file });
  mainWindow = createWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) mainWindow = createWindow();
  });
});

// Graceful shutdown: a running training is cancelled between steps (its last checkpoint stays resumable), the run
// is recorded, the engine host exits, and the library closes before the app does.
let shuttingDown = false;
app.on('before-quit', (event) => {
  if (shuttingDown || !host) return;
  event.preventDefault();
  shuttingDown = true;
  log.info('shutting down');
  void (async () => {
    try {
      await handlers?.cancelTraining();
      await host?.shutdown(10_000);
      await files?.close();
    } catch (error) {
      log.error('shutdown', error);
    } finally {
      library?.close();
      app.quit();
    }
  })();
});

process.on('uncaughtException', (error) => log.error('uncaught exception', error));

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
