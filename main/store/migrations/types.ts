import type Database from 'better-sqlite3';

/** One schema step. Versions go in tens (10, 20, ...) so a fix can slot in between; each runs in one transaction. */
export interface Migration {
  readonly version: number;
  /** Kebab-case, as in the file name: '0010-initial'. */
  readonly name: string;
  up(db: Database.Database): void;
}
