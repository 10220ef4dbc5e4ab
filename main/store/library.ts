/**
 * openLibrary: the one connection to library.sqlite in a data directory, migrated to the latest schema, with
 * typed repositories. WAL lets readers (a second connection, a worker) read while the app writes.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { StoreError } from './errors';
import { LineageQueries } from './lineage';
import { LATEST_VERSION, migrate, schemaVersion } from './migrate';
import { DataDir, layout } from './paths';
import { AdaptersRepo } from './repos/adapters';
import { ComparisonsRepo } from './repos/comparisons';
import type { StoreContext } from './repos/context';
import { DatasetsRepo } from './repos/datasets';
import { MetricsRepo } from './repos/metrics';
import { ModelsRepo } from './repos/models';
import { RunsRepo } from './repos/runs';
import { SettingsRepo } from './repos/settings';
import { VersionsRepo } from './repos/versions';
import { lockDataDir, type DataDirLock } from './lock';
import { startupCheck } from './startup';
import type { StartupReport } from './types';

export interface LibraryOptions {
  /**
   * Path of a better_sqlite3.node built for the running ABI. The Electron app passes the one rebuilt for
   * Electron; plain Node (tests, CLI) leaves it out and gets the default build.
   */
  readonly nativeBinding?: string;
  /** Open without writing: no migration (the schema must be current), no WAL switch. For extra readers. */
  readonly readonly?: boolean;
  /**
   * The app or server that will own this library ('lorasmith serve', 'the Lorasmith app'): takes the data-dir lock
   * (lock.ts) before anything is read, and refuses with LIBRARY_IN_USE naming the holder while another one runs.
   */
  readonly holder?: string;
}

export interface Library {
  readonly dataDir: DataDir;
  /** The connection, for tests and diagnostics; the repositories are the API. */
  readonly db: Database.Database;
  readonly models: ModelsRepo;
  readonly datasets: DatasetsRepo;
  readonly adapters: AdaptersRepo;
  readonly versions: VersionsRepo;
  readonly runs: RunsRepo;
  readonly metrics: MetricsRepo;
  readonly comparisons: ComparisonsRepo;
  readonly settings: SettingsRepo;
  readonly lineage: LineageQueries;
  /** The data-dir lock where opened with a holder; released by close(). */
  readonly lock: DataDirLock | null;
  /**
   * Runs `fn` (repository calls only, synchronous) as one transaction: its rows are written all together or, if it
   * throws or the process dies first, not at all. A version folder it moved in goes with its row: removed on a
   * rollback, and recorded or removed by the start-up after a crash (versions.commit's marker).
   */
  transaction<T>(fn: () => T): T;
  /** Run once at start-up, before anything is shown or trained (see startup.ts). */
  startupCheck(): StartupReport;
  close(): void;
}

export function openLibrary(dataDir: string, options: LibraryOptions = {}): Library {
  const dir = new DataDir(dataDir);
  const lock = options.holder ? lockDataDir(dir.root, options.holder, options.nativeBinding) : null;
  const file = join(dir.root, layout.database);
  let db: Database.Database;
  try {
    db = new Database(file, {
      ...(options.nativeBinding ? { nativeBinding: options.nativeBinding } : {}),
      ...(options.readonly ? { readonly: true, fileMustExist: true } : {}),
    });
  } catch (error) {
    lock?.release();
    throw error;
  }
  try {
    configure(db, options.readonly === true);
    if (options.readonly) {
      const version = schemaVersion(db);
      if (version !== LATEST_VERSION) {
        throw new StoreError(version > LATEST_VERSION ? 'DATABASE_TOO_NEW' : 'INVALID_STATE',
          `${file} is at schema version ${version}; this app reads version ${LATEST_VERSION} only`);
      }
    } else {
      migrate(db, { file });
    }
  } catch (error) {
    db.close();
    lock?.release();
    throw error;
  }
  // Settle actions of writes made inside Library.transaction, run when it ends (StoreContext.whenSettled).
  const unsettled: ((committed: boolean) => void)[] = [];
  let inLibraryTransaction = false;
  const ctx: StoreContext = {
    db,
    dataDir: dir,
    whenSettled: (action) => (inLibraryTransaction ? unsettled.push(action) : action(true)),
  };
  const metrics = new MetricsRepo(ctx);
  return {
    dataDir: dir,
    db,
    models: new ModelsRepo(ctx),
    datasets: new DatasetsRepo(ctx),
    adapters: new AdaptersRepo(ctx),
    versions: new VersionsRepo(ctx),
    runs: new RunsRepo(ctx),
    metrics,
    comparisons: new ComparisonsRepo(ctx),
    settings: new SettingsRepo(ctx),
    lineage: new LineageQueries(ctx, metrics),
    lock,
    transaction: <T>(fn: () => T): T => {
      if (inLibraryTransaction) return db.transaction(fn)(); // nested: the outermost settles
      inLibraryTransaction = true;
      let committed = false;
      try {
        const result = db.transaction(fn)();
        committed = true;
        return result;
      } finally {
        inLibraryTransaction = false;
        for (const action of unsettled.splice(0)) action(committed);
      }
    },
    startupCheck: () => startupCheck(ctx),
    close: () => {
      db.close();
      lock?.release();
    },
  };
}

function configure(db: Database.Database, readonly: boolean): void {
  // Another connection mid-checkpoint or mid-write: wait rather than fail with SQLITE_BUSY.
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  if (readonly) return;
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal') {
    throw new StoreError('INVALID_STATE', `could not switch the library to WAL mode (got '${String(mode)}')`);
  }
  // In WAL, NORMAL loses at most the last transactions on power loss, never consistency.
  db.pragma('synchronous = NORMAL');
}
