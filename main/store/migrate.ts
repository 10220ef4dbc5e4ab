/**
 * Brings a database to a schema version. The version lives in PRAGMA user_version; each migration and the
 * version bump commit in one transaction, so a crash leaves the database at the previous version, never between.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors';
import { LATEST_VERSION, MIGRATIONS, type Migration } from './migrations/index';

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export interface MigrationResult {
  readonly from: number;
  readonly to: number;
  readonly applied: readonly string[];
}

/**
 * Applies the migrations above the database's version, up to `target` (the latest by default; tests stop
 * earlier to build an old schema). Refuses a database newer than the newest migration this app knows.
 */
export function migrate(
  db: Database.Database,
  options: { migrations?: readonly Migration[]; target?: number; file?: string } = {},
): MigrationResult {
  const migrations = options.migrations ?? MIGRATIONS;
  checkOrder(migrations);
  const latestKnown = migrations[migrations.length - 1]?.version ?? 0;
  const target = options.target ?? latestKnown;
  const from = schemaVersion(db);
  if (from > latestKnown) {
    throw new StoreError('DATABASE_TOO_NEW',
      `the library ${options.file ?? ''} is at schema version ${from}, newer than this app knows ` +
      `(version ${latestKnown}); a newer Lorasmith wrote it. Update Lorasmith, or open another data directory`);
  }
  const applied: string[] = [];
  for (const migration of migrations) {
    if (migration.version <= from || migration.version > target) continue;
    try {
      db.transaction(() => {
        migration.up(db);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) throw new Error(`${broken.length} rows break a foreign key`);
        db.pragma(`user_version = ${migration.version}`);
      })();
    } catch (error) {
      throw new StoreError('MIGRATION_FAILED',
        `migration ${migration.name} failed and was rolled back (the library stays at version ` +
        `${schemaVersion(db)}): ${(error as Error).message}`);
    }
    applied.push(migration.name);
  }
  return { from, to: schemaVersion(db), applied };
}

function checkOrder(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (m.version <= previous || m.version % 10 !== 0) {
      throw new StoreError('MIGRATION_FAILED',
        `migration ${m.name} has version ${m.version}; versions must rise in multiples of ten after ${previous}`);
    }
    previous = m.version;
  }
}

export { LATEST_VERSION };
