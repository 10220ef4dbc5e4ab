import type Database from 'better-sqlite3';
import type { DataDir } from '../paths';

/** What every repository shares: the one connection and the data directory that stored paths are relative to. */
export interface StoreContext {
  readonly db: Database.Database;
  readonly dataDir: DataDir;
  /**
   * Runs `settle` once the rows just written are final: at once outside a transaction, else when the outermost
   * transaction (Library.transaction) commits (true) or rolls back (false). For files whose fate follows the rows.
   */
  readonly whenSettled: (settle: (committed: boolean) => void) => void;
}
