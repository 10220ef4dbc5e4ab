import type Database from 'better-sqlite3';
import type { DataDir } from '../paths';

/** What every repository shares: the one connection and the data directory that stored paths are relative to. */
export interface StoreContext {
  readonly db: Database.Database;
  readonly dataDir: DataDir;
}
