import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from '../../main/store/errors';
import { openLibrary } from '../../main/store/library';
import { LATEST_VERSION, migrate, schemaVersion } from '../../main/store/migrate';
import { MIGRATIONS, type Migration } from '../../main/store/migrations/index';
import { tempDir } from './support/fixtures';

type Row = Record<string, unknown>;

function dump(db: Database.Database, table: string, columns = '*'): Row[] {
  return db.prepare(`SELECT ${columns} FROM ${table} ORDER BY 1, 2`).all() as Row[];
}

function tables(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as
    { name: string }[]).map((r) => r.name);
}

/** Rows a version-10 library could hold: a model, a dataset, an adapter with two versions (v2 continues v1), runs. */
function insertVersion10Rows(db: Database.Database): void {
  db.exec(`
    INSERT INTO base_models VALUES ('mdl_a', 'gpt2 tiny', 'gpt2', 'hub', 'openai-community/gpt2', 'main', 'copy',
      'models/mdl_a', 124439808, 'sha256:aa', '[{"bytes":10,"path":"config.json"}]', '2026-01-01T00:00:00.000Z', 'ok');
    INSERT INTO datasets VALUES ('ds_a', 'faq', 'faq.jsonl', 'datasets/ds_a/faq.jsonl', 120,
      'datasets/ds_a/normalized.jsonl', 140, 'alpaca', 3, 1, 300, 80, 120, 100.0, 'sha256:aa', 'sha256:dd',
      '2026-01-01T00:00:01.000Z', 'ok');
    INSERT INTO adapters VALUES ('ada_a', 'support-bot', 'mdl_a', '2026-01-02T00:00:00.000Z');
    INSERT INTO adapter_versions VALUES ('ver_1', 'ada_a', 1, 'trained', NULL, NULL, 'ds_a', 'sha256:aa',
      'sha256:dd', '{"rank":8}', 1.5, 1.7, 40, 'adapters/ada_a/v1', '[]', 'ok', '2026-01-02T00:00:00.000Z');
    INSERT INTO adapter_versions VALUES ('ver_2', 'ada_a', 2, 'trained', 'ver_1', 'support-bot v1', 'ds_a',
      'sha256:aa', 'sha256:dd', '{"rank":8}', 1.2, NULL, 80, 'adapters/ada_a/v2', '[]', 'missing',
      '2026-01-03T00:00:00.000Z');
    INSERT INTO training_runs VALUES ('run_1', 'ada_a', 'mdl_a', 'ds_a', NULL, 'ver_1', '{"rank":8}', 'done',
      '2026-01-02T00:00:00.000Z', '2026-01-02T00:00:01.000Z', '2026-01-02T01:00:00.000Z', NULL,
      'runs/run_1/checkpoints/step-40');
    INSERT INTO training_runs VALUES ('run_2', 'ada_a', 'mdl_a', 'ds_a', 'ver_1', NULL, '{"rank":8}', 'interrupted',
      '2026-01-03T00:00:00.000Z', NULL, NULL, 'the app stopped', NULL);
    INSERT INTO run_metrics VALUES ('run_1', 0, 2.5, NULL, 0.0001, 900.5);
    INSERT INTO run_metrics VALUES ('run_1', 20, 1.9, 2.0, 0.0002, 910.0);
    INSERT INTO run_metrics VALUES ('run_1', 40, 1.5, 1.7, 0.0001, 905.25);
  `);
}

describe('migrations', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Database.Database;
  beforeEach(() => {
    tmp = tempDir();
    db = new Database(join(tmp.path, 'library.sqlite'));
    db.pragma('foreign_keys = ON');
  });
  afterEach(() => {
    db.close();
    tmp.dispose();
  });

  it('are numbered in tens, rising, each with a matching name', () => {
    // Rising, not contiguous: each area of the app numbers its own within a range (0070s: GGUF models).
    MIGRATIONS.forEach((m, i) => {
      expect(m.version % 10).toBe(0);
      expect(m.version).toBeGreaterThan(MIGRATIONS[i - 1]?.version ?? 0);
      expect(m.name.startsWith(String(m.version).padStart(4, '0') + '-')).toBe(true);
    });
    expect(LATEST_VERSION).toBe(MIGRATIONS.at(-1)?.version);
  });

  it('0010-initial: builds the schema from an empty file', () => {
    expect(migrate(db, { target: 10 })).toEqual({ from: 0, to: 10, applied: ['0010-initial'] });
    expect(tables(db)).toEqual(['adapter_versions', 'adapters', 'base_models', 'datasets', 'run_metrics',
      'training_runs']);
    insertVersion10Rows(db);
    expect(db.pragma('foreign_key_check')).toEqual([]);
  });

  it('0010 -> 0020: rows survive unchanged and the comparison and settings tables appear', () => {
    migrate(db, { target: 10 });
    insertVersion10Rows(db);
    const before = Object.fromEntries(tables(db).map((t) => [t, dump(db, t)]));
    expect(migrate(db, { target: 20 }).applied).toEqual(['0020-comparisons-settings']);
    expect(schemaVersion(db)).toBe(20);
    for (const [table, rows] of Object.entries(before)) expect(dump(db, table)).toEqual(rows);
    expect(tables(db)).toEqual(expect.arrayContaining(['comparisons', 'comparison_outputs', 'settings']));
    db.prepare("INSERT INTO settings VALUES ('theme', '\"dark\"', '2026-01-04T00:00:00.000Z')").run();
  });

  it('0020 -> 0030: rows survive, new columns are null, each run gets its last metric step', () => {
    migrate(db, { target: 20 });
    insertVersion10Rows(db);
    const oldRunColumns = 'id, adapter_id, base_model_id, dataset_id, parent_version_id, adapter_version_id, ' +
      'settings_json, status, created_at, started_at, finished_at, error, last_checkpoint';
    const runsBefore = dump(db, 'training_runs', oldRunColumns);
    const metricsBefore = dump(db, 'run_metrics');
    expect(migrate(db, { target: 30 }).applied).toEqual(['0030-run-progress']);
    expect(dump(db, 'training_runs', oldRunColumns)).toEqual(runsBefore);
    expect(dump(db, 'run_metrics', 'run_id, step, loss, val_loss, lr, tokens_per_second')).toEqual(metricsBefore);
    expect(dump(db, 'run_metrics', 'grad_norm, epoch').every((r) => r.grad_norm === null && r.epoch === null))
      .toBe(true);
    expect(dump(db, 'training_runs', 'id, step, total_steps')).toEqual([
      { id: 'run_1', step: 40, total_steps: null },
      { id: 'run_2', step: 0, total_steps: null },
    ]);
  });

  it('0030 -> 0070: rows survive, GGUF facts go beside a model and leave with it', () => {
    migrate(db, { target: 10 });
    insertVersion10Rows(db);
    migrate(db, { target: 30 });
    const before = Object.fromEntries(tables(db).map((t) => [t, dump(db, t)]));
    expect(migrate(db, { target: 70 }).applied).toEqual(['0070-gguf-models']);
    for (const [table, rows] of Object.entries(before)) expect(dump(db, table)).toEqual(rows);
    db.prepare(`INSERT INTO base_models VALUES ('mdl_g', 'qwen2.5:0.5b', 'qwen2', 'folder', '/o/blob', NULL, 'reference',
      '/o/blob', 494032768, 'sha256:a1', '[]', '2026-01-05T00:00:00.000Z', 'ok')`).run();
    db.prepare("INSERT INTO base_model_gguf VALUES ('mdl_g', 'ollama', 'qwen2.5:0.5b', 'Q4_K_M', 397807936)").run();
    expect(() => db.prepare("INSERT INTO base_model_gguf VALUES ('nope', 'ollama', 'x', NULL, 1)").run()).toThrow(/FOREIGN KEY/);
    expect(() => db.prepare("INSERT INTO base_model_gguf VALUES ('mdl_g', 'hub', 'x', NULL, 1)").run()).toThrow(/CHECK/);
    db.prepare("DELETE FROM base_models WHERE id = 'mdl_g'").run();
    expect(dump(db, 'base_model_gguf')).toEqual([]);
  });

  it('0070 -> 0080: the outputs of a comparison saved before answer its one prompt (turn 0)', () => {
    migrate(db, { target: 10 });
    insertVersion10Rows(db);
    migrate(db, { target: 70 });
    db.exec(`
      INSERT INTO comparisons VALUES ('cmp_a', 'hello', 'mdl_a', '[{"role":"user","content":"Hi"}]', '{}', '2026-01-04T00:00:00.000Z');
      INSERT INTO comparison_outputs VALUES ('cmp_a', 0, 'Base model', '{"adapters":[]}', 'Hello.', 2, NULL);
      INSERT INTO comparison_outputs VALUES ('cmp_a', 1, 'support-bot v1', '{"adapters":[]}', 'Hi there!', 3, 20.5);
    `);
    const before = dump(db, 'comparison_outputs');
    expect(migrate(db, { target: 80 }).applied).toEqual(['0080-comparison-turns']);
    expect(dump(db, 'comparison_outputs')).toEqual(before.map((row) => ({ ...row, turn: 0 })));
    expect(() => db.prepare("UPDATE comparison_outputs SET turn = -1 WHERE position = 0").run()).toThrow(/CHECK/);
  });

  it('a database newer than the app is refused, naming both versions', () => {
    migrate(db);
    db.pragma('user_version = 990');
    db.close();
    let error: unknown;
    try {
      openLibrary(tmp.path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('DATABASE_TOO_NEW');
    expect((error as Error).message).toMatch(new RegExp(`version 990.*version ${LATEST_VERSION}`));
    db = new Database(join(tmp.path, 'library.sqlite'));
    expect(schemaVersion(db)).toBe(990);
  });

  it('a failing migration rolls back whole and leaves the version where it was', () => {
    migrate(db);
    const broken: Migration = {
      version: LATEST_VERSION + 10,
      name: `${LATEST_VERSION + 10}-broken`,
      up(d) {
        d.exec('CREATE TABLE half_done (x INTEGER)');
        d.exec("INSERT INTO adapters VALUES ('a', 'n', 'no-such-model', 't')");
      },
    };
    expect(() => migrate(db, { migrations: [...MIGRATIONS, broken] })).toThrow(/broken failed and was rolled back/);
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expect(tables(db)).not.toContain('half_done');
  });

  it('refuses a migration list out of order or off the tens', () => {
    const odd: Migration = { version: 15, name: '0015-odd', up: () => undefined };
    expect(() => migrate(db, { migrations: [MIGRATIONS[0] as Migration, odd] })).toThrow(/multiples of ten/);
  });

  it('openLibrary sets WAL, foreign keys and the latest version', () => {
    db.close();
    const library = openLibrary(tmp.path);
    expect(library.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(library.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(schemaVersion(library.db)).toBe(LATEST_VERSION);
    library.close();
    db = new Database(join(tmp.path, 'library.sqlite'));
  });
});
